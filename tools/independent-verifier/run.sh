#!/bin/sh
# Independent verifier: corpus check, real exports, mutations, comparison with `accord verify`.
# Usage: tools/independent-verifier/run.sh   (ACCORD=path/to/accord to override the binary)
set -e
cd "$(dirname "$0")"
export ACCORD=${ACCORD:-/work/main/target/release/accord}
echo "== corpus (formats export, event, jcs)"; python3 corpus.py | tail -1
if [ -n "$FRESH" ] || [ ! -f seeds/agentA.jsonl ]; then echo "== real exports with $ACCORD"; ./make_exports.sh; fi
echo "== mutations"; python3 mutate.py
echo "== comparison (accord verify --json, --strict --json, --allow-unsealed --json vs verifier.py)"
python3 compare.py > compare.out; head -1 compare.out
echo "details: results.tsv, disagreements/NOTES.md"
