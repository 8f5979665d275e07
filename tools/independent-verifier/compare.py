#!/usr/bin/env python3
"""Run `accord verify FILE --json` (batch and --strict) and verifier.py on every file in cases/;
compare ok/fail and, when both fail, the line. Writes results.tsv and copies each disagreement
to disagreements/."""
import os, sys, json, subprocess, shutil, re
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verifier as V
HERE = os.path.dirname(os.path.abspath(__file__))
ACCORD = os.environ.get('ACCORD', '/work/main/target/release/accord')
CASES = os.path.join(HERE, 'cases'); DIS = os.path.join(HERE, 'disagreements')

def accord(path, strict, unsealed=False):
    args = [ACCORD, 'verify', path, '--json'] + (['--strict'] if strict else []) + (['--allow-unsealed'] if unsealed else [])
    p = subprocess.run(args, capture_output=True, env=dict(os.environ, ACCORD_HOME='/nonexistent-accord-home'), timeout=120)
    try:
        o = json.loads(p.stdout.decode().strip().split('\n')[0])
    except Exception:
        return (None, None, 'unparseable output rc=%d: %r' % (p.returncode, p.stderr[:200]))
    return (o.get('ok'), o.get('line'), o.get('reason', ''))

CLASSES = {
    'A': 'accord wrong (CLI): `--json` prints "line": null although the failure is at a line '
         '(its reason text starts "line N:"); PROTOCOL 5.3 steps 1-2 make these line errors, the corpus '
         'case export-bad-blank-line requires `line: 2`, CLI.md says line is null only "when not applicable"',
    'B': 'accord wrong (order): an empty line is reported before an earlier event\'s bad signature '
         '(also with --strict); PROTOCOL 4.1 step 6 "a queued signature is always checked before any '
         'later failure is reported" and 5.3 step 3 "earlier queued signatures are settled first, as for any failure"',
    '?': 'unclassified',
}

def classify(mine, theirs_list):
    for t in theirs_list:
        m = re.match(r'line (\d+): ', t[2] or '')
        if t[0] is False and mine[0] is False and t[1] is None and m:
            if int(m.group(1)) == mine[1]: continue
            if 'empty line' in t[2] and mine[2] == 'signature' and mine[1] < int(m.group(1)): return 'B'
            return '?'
        if (t[0], t[1]) != (mine[0], mine[1]) and not (t[0] and mine[0]): return '?'
    return 'A'

def main():
    names = sorted(os.listdir(CASES))
    with ThreadPoolExecutor(2) as ex:
        ab = list(ex.map(lambda n: accord(os.path.join(CASES, n), False), names))
        ast = list(ex.map(lambda n: accord(os.path.join(CASES, n), True), names))
        au = list(ex.map(lambda n: accord(os.path.join(CASES, n), False, True), names))
    shutil.rmtree(DIS, ignore_errors=True); os.makedirs(DIS)
    rows = []; agree = 0; dis = []; skipped = 0; modes_differ = []
    for n, a, s, u in zip(names, ab, ast, au):
        data = open(os.path.join(CASES, n), 'rb').read()
        mine = V.verify_export(data); mine_u = V.verify_export(data, allow_unsealed=True)
        if mine[0] is None: skipped += 1; continue
        if (a[0], a[1]) != (s[0], s[1]): modes_differ.append(n)
        ok = True
        for theirs in (a, s):
            if theirs[0] != mine[0] or (not mine[0] and theirs[1] != mine[1]): ok = False
        if u[0] != mine_u[0] or (not mine_u[0] and u[1] != mine_u[1]): ok = False
        rows.append('\t'.join([n, 'AGREE' if ok else 'DIFF', 'mine=%s/%s' % (mine[0], mine[1]),
                               'batch=%s/%s' % (a[0], a[1]), 'strict=%s/%s' % (s[0], s[1]), 'unsealed: mine=%s/%s accord=%s/%s' % (mine_u[0], mine_u[1], u[0], u[1]), mine[2], a[2][:160]]))
        if ok: agree += 1
        else:
            cl = classify(mine, [a, s]) if mine_u[:2] == mine[:2] or u[0] is False else '?'
            dis.append((cl, n, rows[-1])); shutil.copy(os.path.join(CASES, n), DIS)
    open(os.path.join(HERE, 'results.tsv'), 'w').write('\n'.join(rows) + '\n')
    summary = ('cases: %d compared (%d archives skipped); agree: %d; disagree: %d (%s); batch vs strict differ: %d'
          % (len(rows), skipped, agree, len(dis),
             ', '.join('class %s: %d' % (k, sum(1 for d in dis if d[0] == k)) for k in sorted(set(d[0] for d in dis))),
             len(modes_differ)))
    print(summary)
    with open(os.path.join(DIS, 'NOTES.md'), 'w') as f:
        f.write('# Disagreements between verifier.py and `accord verify`\n\n' + summary + '\n\nClasses:\n\n')
        for k in sorted(set(d[0] for d in dis)): f.write('- **%s**: %s\n' % (k, CLASSES[k]))
        f.write('\n| class | case | verdicts (mine / accord batch / accord --strict / --allow-unsealed) | accord reason |\n|---|---|---|---|\n')
        for cl, n, r in dis:
            p = r.split('\t')
            f.write('| %s | `%s` | %s | %s |\n' % (cl, n, ' '.join(p[2:6]), p[7].replace('|', '\\|')))
    for d in dis: print(d[0], d[2])
    for m in modes_differ: print('MODES DIFFER', m)

if __name__ == '__main__':
    main()
