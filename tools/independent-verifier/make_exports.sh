#!/bin/sh
# Makes real exports with the accord binary into seeds/ (agent A: varied payloads; agent B: a second agent).
set -e
A=${ACCORD:-/work/main/target/release/accord}
OUT=$(dirname "$0")/seeds
H=$(mktemp -d); export ACCORD_HOME=$H
$A init --no-passphrase --name planner >/dev/null 2>&1
$A stamp task.start --payload '{}' >/dev/null
$A stamp note --payload '{"text":"résumé \u00e9 ✓ 𝄞 \u2028 / \u007f","ctl":"\u0001\t\n","empty":{},"arr":[]}' >/dev/null
$A stamp nums --payload '{"a":0,"b":-1,"c":9007199254740991,"d":-9007199254740991,"e":[1,2,3]}' >/dev/null
DEEP=$(python3 -c "print('{\"d\":'*125 + '1' + '}'*125)")
$A stamp deep --payload "$DEEP" >/dev/null
$A stamp a:b/c-d_e.f --payload '{"\ud834\udd1e":1,"\uffff":2,"z":3,"A":4,"":5}' >/dev/null
$A stamp bool --payload '{"t":true,"f":false,"n":null,"s":"\"\\"}' >/dev/null
$A export --out $OUT/agentA.jsonl --force 2>/dev/null
H2=$(mktemp -d); export ACCORD_HOME=$H2
$A init --no-passphrase >/dev/null 2>&1
for i in 1 2 3; do $A stamp step --payload "{\"i\":$i}" >/dev/null; done
$A export --out $OUT/agentB.jsonl --force 2>/dev/null
rm -rf "$H" "$H2"
