#!/usr/bin/env python3
"""Run verifier.py over testdata/corpus cases of formats export, event and jcs."""
import os, sys, base64
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verifier as V

def load(path):
    raw = open(path, 'rb').read()
    head, _, body = raw.partition(b'\n\n')
    h = {}
    for ln in head.decode().split('\n'):
        k, _, v = ln.partition(': '); h[k] = v
    if h.get('encoding') == 'base64': body = base64.b64decode(body)
    return h, body

def main(d):
    tot = agree = 0; rows = []
    for name in sorted(os.listdir(d)):
        if name == 'README.md' or name.startswith('.'): continue
        h, body = load(os.path.join(d, name))
        fmt = h['format']
        if fmt == 'export':
            ok, line, why = V.verify_export(body, h.get('allow-unsealed') == 'true')
            if h.get('expect-agent') and ok:
                first = V.parse_json(body.split(b'\n')[0])
                if first['agent_id'] != h['expect-agent']: ok, line, why = False, 1, 'wrong agent'
        elif fmt == 'event':
            ok, line, why = V.verify_single_event(body, h.get('key'))
        elif fmt == 'jcs':
            ok, line, why = V.verify_jcs(body)
        else:
            continue
        exp_ok = h['expect'] == 'ok'
        exp_line = int(h['line']) if 'line' in h else None
        good = (ok == exp_ok) and (exp_line is None or ok or line == exp_line)
        tot += 1; agree += good
        rows.append('%s %-60s expect=%-26s got=%s line=%s (%s)%s' % (
            'AGREE' if good else 'DIFF ', name, h['expect'], 'ok' if ok else 'fail', line, why,
            ' [known-failure]' if 'known-failure' in h else ''))
    print('\n'.join(rows))
    print('corpus cases run: %d, agree with expect: %d, differ: %d' % (tot, agree, tot - agree))

if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../../testdata/corpus'))
