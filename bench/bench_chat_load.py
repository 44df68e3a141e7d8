"""Chat load benchmark: N browser users ask at the same moment; how long each waits, and that none is lost.

Each user is a gradio_client Client on the chat's public /ask endpoint (the one the question box uses). All
connect first, then submit together. Per user it records the wait (submit to the first screen of its own turn:
the app answers one question at a time, so this is the time spent in the queue) and the total (submit to the
cited answer), and checks the final message is an answer, not an error. It prints one row per user in the
order they were served, then the counts and the medians and maxima.

How to run (from the repository root, alone on the machine; 20 users take a few minutes on 2 cores):
    .venv/bin/python bench/bench_chat_load.py                      # starts `rag chat` on the sample corpus
    .venv/bin/python bench/bench_chat_load.py --url http://127.0.0.1:7860/   # a chat already running
    .venv/bin/python bench/bench_chat_load.py --users 5 --json bench/out/chat_load.json
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import NO_ANSWER  # noqa: E402

# Invented questions about the bundled sample corpus (rag/sample_corpus), asked in turn by the users.
QUESTIONS = (
    "How long did the Ever Given block the Suez Canal?",
    "Which rocket carried the James Webb Space Telescope into space?",
    "What was the score of the World Cup final penalty shoot-out?",
    "How far from Earth is the black hole photographed by the Event Horizon Telescope?",
    "How many monthly users did ChatGPT have in January 2023?",
    "Near which part of the Moon did the Chandrayaan-3 lander touch down?",
    "From which launch complex did the Artemis I rocket lift off?",
)


@dataclass
class Turn:
    user: int
    question: str
    waited_s: float | None = None  # submit to the first screen of this user's turn
    total_s: float | None = None  # submit to the final message
    answer: str = ""  # the final assistant message as plain text
    error: str = ""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_chat(index_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """`rag chat` from this checkout on the index (built from the sample corpus first if it is missing)."""
    cli = [sys.executable, "-m", "rag.cli"]
    if not (index_dir / "manifest.json").is_file():
        say(f"indexing the sample corpus into {index_dir} …")
        subprocess.run(cli + ["index", "--index-dir", str(index_dir)], cwd=ROOT, check=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.Popen(cli + ["chat", "--index-dir", str(index_dir), "--port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def wait_until_serving(url: str, proc: subprocess.Popen | None, timeout: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"rag chat exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _message_text(content: object) -> str:
    if isinstance(content, list):  # Gradio message parts: [{"type": "text", "text": ...}, ...]
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(content or ""))).split())


def run_users(url: str, users: int, timeout: float) -> tuple[list[Turn], float]:
    """All users connect, then submit at once; returns their turns and the wall time from the submit."""
    from gradio_client import Client

    turns = [Turn(i + 1, QUESTIONS[i % len(QUESTIONS)]) for i in range(users)]
    ready = threading.Barrier(users + 1)

    def user(turn: Turn) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # reported in the table
            turn.error = f"connect: {type(exc).__name__}: {exc}"
            ready.abort()
            return
        ready.wait()
        submitted = time.monotonic()
        try:
            job = client.submit(turn.question, [], "", "", "", api_name="/ask")
            while not job.done():
                if turn.waited_s is None and job.outputs():
                    turn.waited_s = round(time.monotonic() - submitted, 2)
                if time.monotonic() - submitted > timeout:
                    raise TimeoutError(f"no answer after {timeout:.0f} s")
                time.sleep(0.1)
            _, chat, _ = job.result()
            turn.total_s = round(time.monotonic() - submitted, 2)
            if turn.waited_s is None:
                turn.waited_s = turn.total_s
            final = chat[-1]["content"]
            turn.answer = _message_text(final)
            if "rag-error" in str(final) or "rag-answer" not in str(final):
                turn.error = "the chat showed an error: " + turn.answer[:120]
        except Exception as exc:  # reported in the table
            turn.error = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=user, args=(t,), daemon=True) for t in turns]
    for t in threads:
        t.start()
    ready.wait()
    started = time.monotonic()
    for t in threads:
        t.join(timeout + 60)
    return turns, time.monotonic() - started


def report(turns: list[Turn], wall: float) -> dict:
    answered = [t for t in turns if not t.error and t.total_s is not None]
    waits = [t.waited_s for t in answered if t.waited_s is not None]
    totals = [t.total_s for t in answered if t.total_s is not None]
    print(f"{'user':>4} {'waited s':>9} {'total s':>8}  answer (or error)")
    for t in sorted(turns, key=lambda t: (t.total_s is None, t.total_s or 0.0)):
        shown = t.error or t.answer
        print(f"{t.user:>4} {t.waited_s if t.waited_s is not None else '-':>9} "
              f"{t.total_s if t.total_s is not None else '-':>8}  {shown[:90]}")
    summary = {"users": len(turns), "answered": len(answered), "lost": len(turns) - len(answered),
               "refused": sum(NO_ANSWER in t.answer for t in answered),  # answered with the no-answer sentence
               "wall_s": round(wall, 1),
               "waited_p50_s": round(statistics.median(waits), 1) if waits else None,
               "waited_max_s": round(max(waits), 1) if waits else None,
               "total_p50_s": round(statistics.median(totals), 1) if totals else None,
               "total_max_s": round(max(totals), 1) if totals else None,
               "seconds_per_answer": round(wall / len(answered), 1) if answered else None}
    print(f"answered {summary['answered']}/{summary['users']} ({summary['refused']} with the no-answer sentence), "
          f"lost {summary['lost']}; wall {summary['wall_s']} s "
          f"({summary['seconds_per_answer']} s per answer); waited p50 {summary['waited_p50_s']} s, max "
          f"{summary['waited_max_s']} s; total p50 {summary['total_p50_s']} s, max {summary['total_max_s']} s")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a chat already serving (default: start `rag chat` here)")
    parser.add_argument("--index-dir", type=Path, default=ROOT / "index" / "bench-sample",
                        help="the index the started chat answers from (built from the sample corpus if missing)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a user waits before giving up")
    parser.add_argument("--json", type=Path, help="write the summary and the per-user rows here")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    proc = None
    url = args.url
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_chat(args.index_dir, port, ROOT / "bench" / "out" / "chat_load.log")
    try:
        say(f"chat serving after {wait_until_serving(url, proc):.0f} s; {args.users} users ask at once …")
        turns, wall = run_users(url, args.users, args.timeout)
        summary = report(turns, wall)
        if proc is not None:
            summary["server_alive"] = proc.poll() is None
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"summary": summary, "users": [asdict(t) for t in turns]}, indent=2,
                                            ensure_ascii=False), encoding="utf-8")
            say(f"wrote {args.json}")
        return 0 if summary["lost"] == 0 else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
