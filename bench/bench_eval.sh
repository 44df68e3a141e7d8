#!/usr/bin/env bash
# Reproduces the quality tables of the closing notes: retrieval (dense / BM25 / hybrid) and full answers on
# the seed set and rgb_en, with the default models. Run it alone on a quiet machine (2 cores): the answer
# runs take ~4 min (seed) and ~20 min (rgb_en). Results: bench/out/*.json and the tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
RAG=.venv/bin/rag
SHARED=${SHARED:-../shared}
mkdir -p bench/out
for set in seed rgb; do
  if [ $set = seed ]; then qa=$SHARED/eval/seed_qa.jsonl; corpus=$SHARED/corpus;
  else qa=$SHARED/eval/rgb_en/qa.jsonl; corpus=$SHARED/eval/rgb_en/corpus; fi
  for mode in dense lexical hybrid; do
    echo "== $set retrieval $mode"
    $RAG eval "$qa" --corpus "$corpus" --retrieval-only --mode $mode --json bench/out/$set-retrieval-$mode.json
  done
  echo "== $set answers"
  /usr/bin/time -f "%e s wall" $RAG eval "$qa" --corpus "$corpus" --json bench/out/$set-answers.json
done
