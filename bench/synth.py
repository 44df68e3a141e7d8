"""Deterministic synthetic news articles for the benchmarks (bench_index.py, bench_retrieval.py).

Each article is a .txt file the ingester reads like a real one: headline on the first line, a
`Published: YYYY-MM-DD` line, then several paragraphs (~300-600 words). Every article draws on one of a few
dozen topics (its own word pool) plus made-up names and places, so texts differ and share words the way news
does. Same seed, same corpus.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

_COMMON_NOUNS = """
government minister council city region country company market price report official statement plan
project policy agency court judge police crowd hospital school university research study team season
match player coach election vote party leader campaign law bill budget tax economy inflation bank rate
investor share profit loss worker union strike factory port ship train airport flight road bridge storm
flood fire drought heat harvest farmer energy power grid oil gas coal wind solar battery car engine rocket
satellite mission telescope spacecraft launch orbit moon planet scientist doctor patient vaccine virus
disease trial drug museum festival film album concert artist writer book award prize ceremony visitor
tourist border migrant refugee army soldier peace talks treaty summit embassy protest demonstration
spokesperson resident community village district province capital island coast river mountain forest
""".split()

_VERBS = """
announced confirmed said reported warned expected approved rejected launched opened closed reached
signed delayed cancelled increased reduced raised lowered won lost defeated built completed discovered
revealed estimated predicted suggested argued denied promised planned agreed criticised praised
welcomed described recorded measured tested released arrested charged investigated reviewed doubled
""".split()

_ADJECTIVES = """
new major large small early late first final recent previous national local regional international
public private official independent significant unexpected strong weak rapid slow long short heavy
record historic annual monthly economic political scientific medical financial environmental digital
""".split()

_FUNCTION = """
the the the the of of of and and and to to in in a a for on with by at from that this its their after
before during while as over under about between against into than
""".split()

_TOPIC_STEMS = """
volcano eruption earthquake tsunami glacier wildfire hurricane monsoon cyclone heatwave lithium cobalt
semiconductor chipmaker refinery pipeline tariff sanctions subsidy pension mortgage housing rent
railway tramway highway ferry airline cruise stadium tournament marathon regatta olympiad cricket
football tennis cycling rugby chess orchestra opera theatre cathedral monastery archaeology fossil
dinosaur comet asteroid exoplanet quasar nebula lunar rover probe reactor fusion turbine hydrogen
vaccine antibiotic malaria cholera measles pandemic genome protein enzyme robotics software
encryption cyberattack blockchain satellite broadband telecom startup merger acquisition bankruptcy
dividend bond currency deficit parliament referendum coalition ministry senate governor mayor
embassy ceasefire shipment harbour canal dam reservoir irrigation vineyard fishery coral reef
""".split()

_SYLLABLES = ("ka ri mo ne ta lu sa vi do re bel mar tin os an gor ul ez pra ven hal dor is el"
              " kov ber lan sten wick ford ham ton ville grad burg dal vik").split()


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


class Corpus:
    """A seeded generator of articles; .article(i) is the same text for the same (seed, i)."""

    def __init__(self, seed: int = 1234, topics: int = 60) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.people = [f"{_name(rng, 2)} {_name(rng, 3)}" for _ in range(400)]
        self.places = [_name(rng, rng.choice((2, 3))) for _ in range(300)]
        kinds = ("Group", "Institute", "Holdings", "Agency", "Union", "Labs")
        self.orgs = [f"{_name(rng, 2)} {rng.choice(kinds)}" for _ in range(150)]
        # Each topic: a handful of stems (shared across a few topics) plus its own invented terms.
        self.topics = []
        for _ in range(topics):
            words = rng.sample(_TOPIC_STEMS, 8) + [_name(rng, 3).lower() for _ in range(12)]
            self.topics.append(words)

    def _sentence(self, rng: random.Random, topic: list[str], people: list[str], places: list[str]) -> str:
        n = rng.randint(9, 24)
        words: list[str] = []
        for _ in range(n):
            r = rng.random()
            if r < 0.30:
                words.append(rng.choice(_FUNCTION))
            elif r < 0.52:
                words.append(rng.choice(topic))
            elif r < 0.70:
                words.append(rng.choice(_COMMON_NOUNS))
            elif r < 0.80:
                words.append(rng.choice(_VERBS))
            elif r < 0.88:
                words.append(rng.choice(_ADJECTIVES))
            elif r < 0.93:
                words.append(rng.choice(people))
            elif r < 0.97:
                words.append(rng.choice(places))
            else:
                numbers = (rng.randint(2, 99), rng.randint(100, 9999), rng.randint(1990, 2024))
                words.append(str(rng.choice(numbers)))
        text = " ".join(words)
        return text[0].upper() + text[1:] + rng.choice((".", ".", ".", ".", "?", "!"))

    def article(self, i: int) -> tuple[str, str]:
        """(file name, text) of article i."""
        rng = random.Random(self.seed * 1_000_003 + i)
        topic = self.topics[rng.randrange(len(self.topics))]
        people = rng.sample(self.people, 4)
        places = rng.sample(self.places, 3)
        org = rng.choice(self.orgs)
        headline = (f"{org} {rng.choice(_VERBS)} {rng.choice(_ADJECTIVES)} {rng.choice(topic)} "
                    f"{rng.choice(('plan', 'deal', 'report', 'study', 'project', 'talks'))} in {places[0]}")
        day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3650))
        target = rng.randint(300, 575)
        paragraphs: list[str] = []
        words = 0
        while words < target:  # sentence by sentence, so the body stops near target (never past ~600)
            sentences: list[str] = []
            for _ in range(rng.randint(2, 6)):
                sentence = self._sentence(rng, topic, people + [org], places)
                sentences.append(sentence)
                words += len(sentence.split())
                if words >= target:
                    break
            paragraphs.append(" ".join(sentences))
        text = f"{headline}\nPublished: {day.isoformat()}\n\n" + "\n\n".join(paragraphs) + "\n"
        return f"{i:06d}_{re.sub(r'[^a-z0-9]+', '_', headline.lower())[:40]}.txt", text

    def write(self, folder: Path, n: int) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            name, text = self.article(i)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        return paths


def questions_from(paths: list[Path], n: int, seed: int = 99) -> list[str]:
    """n questions, each built from a few content words (and maybe a name) of one article."""
    rng = random.Random(seed)
    stop = set(_FUNCTION)
    questions = []
    for _ in range(n):
        text = rng.choice(paths).read_text(encoding="utf-8")
        body = text.split("\n", 2)[2]
        words = [w for w in re.findall(r"[A-Za-z]+", body) if w.lower() not in stop and len(w) > 3]
        picked = rng.sample(words, min(len(words), rng.randint(3, 6)))
        questions.append(rng.choice(("What happened with", "Why did", "Who said", "When was", "What is"))
                         + " " + " ".join(picked) + "?")
    return questions
