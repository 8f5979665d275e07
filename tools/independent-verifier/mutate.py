#!/usr/bin/env python3
"""Generate mutated export files into cases/ from seeds/*.jsonl (real accord exports) and from
chains this script signs itself with the public test seeds 01x32 / 02x32 (so that a mutation can
keep a valid signature and isolate one rule). Deterministic (fixed RNG seed)."""
import os, sys, random, re, json, hashlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verifier as V

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'cases')
rnd = random.Random(1234)
cases = {}

def add(name, data):
    assert name not in cases, name
    cases[name] = data

# ------------------------------------------------------------------ self-signed chains
SEED1 = bytes([1]) * 32; SEED2 = bytes([2]) * 32

def ev_line(seed, seq, prev, payload_json, ts, nonce, typ=None, pk=True, agent=None,
            sigf=None, extra=None):
    """Build an event line by hand (payload given as raw JSON text, so non-JCS numbers can be
    signed). Members in canonical order."""
    pub = V.public_key(seed); aid = agent or V.agent_id_of(pub)
    typ = ('genesis' if seq == 0 else 'step') if typ is None else typ
    parts = [('agent_id', json.dumps(aid)), ('format', '"accord-event/1"'), ('nonce', json.dumps(nonce)),
             ('payload', payload_json), ('prev_hash', json.dumps(prev))]
    if pk: parts.append(('public_key', json.dumps(V.b64url_encode(pub))))
    parts.append(('seq', str(seq)))
    parts += [('timestamp', json.dumps(ts)), ('type', json.dumps(typ, ensure_ascii=False))]
    if extra: parts += extra; parts.sort(key=lambda kv: kv[0].encode('utf-16-be'))
    body = lambda ps: '{' + ','.join('"%s":%s' % kv for kv in ps) + '}'
    si = body(parts).encode()
    sig = (sigf or (lambda m: V.sign(seed, m)))(si)
    parts2 = sorted(parts + [('signature', json.dumps(V.b64url_encode(sig)))], key=lambda kv: kv[0].encode('utf-16-be'))
    return body(parts2).encode()

def nonce(i, tag=1): return '%08x-0000-4000-8000-%012x' % (tag, i)
def ts(i): return '2026-11-24T10:%02d:%02d.000000Z' % (15 + i // 60, i % 60)

def seal_line(seed, count, head, agent=None, at='2026-11-24T10:16:00.000000Z', countlit=None, extra=None, sigseed=None):
    aid = agent or V.agent_id_of(V.public_key(seed))
    parts = [('agent_id', json.dumps(aid)), ('count', countlit or str(count)), ('exported_at', json.dumps(at)),
             ('format', '"accord-export-seal/1"'), ('head_hash', json.dumps(head))]
    if extra: parts += extra; parts.sort()
    body = lambda ps: '{' + ','.join('"%s":%s' % kv for kv in ps) + '}'
    sig = V.sign(sigseed or seed, body(parts).encode())
    return body(sorted(parts + [('signature', json.dumps(V.b64url_encode(sig)))])).encode()

def chain(seed, payloads, mods=None, tag=1, seal=True):
    """payloads: list of raw payload JSON texts for seq 1..; mods: {seq: dict of ev_line kwargs}."""
    mods = mods or {}; lines = []; prev = '0' * 64
    allp = ['{"name":"t"}'] + payloads
    for s, p in enumerate(allp):
        kw = dict(seed=seed, seq=s, prev=prev, payload_json=p, ts=ts(s), nonce=nonce(s, tag), pk=(s == 0))
        kw.update(mods.get(s, {}))
        ln = ev_line(**kw); lines.append(ln); prev = hashlib.sha256(ln).hexdigest()
    if seal: lines.append(seal_line(seed, len(lines), prev))
    return lines

def j(lines): return b''.join(l + b'\n' for l in lines)

base = chain(SEED1, ['{"a":1}', '{"b":[1,2,{"c":"x"}]}', '{}'])
add('self-base', j(base))
base2 = chain(SEED2, ['{"a":1}'], tag=2)
add('self-base2', j(base2))

# payload number / structure rules with valid signatures (the canonical check alone cannot catch these)
for nm, p in [('float-1e300', '{"a":1e+300}'), ('int-2p53', '{"a":9007199254740992}'), ('int-neg2p53', '{"a":-9007199254740992}'),
              ('int-max', '{"a":9007199254740991}'), ('int-negmax', '{"a":-9007199254740991}'), ('float-1.5', '{"a":1.5}'),
              ('float-1e21', '{"a":1e+21}'), ('float-small', '{"a":1e-7}'), ('int-2p64', '{"a":18446744073709551616}'),
              ('float-1.0', '{"a":1.0}'), ('neg0', '{"a":-0}'), ('int-1e20', '{"a":100000000000000000000}'),
              ('huge-310', '{"a":1' + '0' * 309 + '}'), ('nested-float', '{"a":[[{"b":0.5}]]}'),
              # payload depth N (the payload object counts as one level; the event adds one more)
              ('pdepth124', '{"d":' * 124 + '1' + '}' * 124), ('pdepth125', '{"d":' * 125 + '1' + '}' * 125),
              ('pdepth126', '{"d":' * 126 + '1' + '}' * 126), ('pdepth127', '{"d":' * 127 + '1' + '}' * 127),
              ('pdepth126-arr', '{"d":' + '[' * 125 + ']' * 125 + '}'), ('pdepth127-arr', '{"d":' + '[' * 126 + ']' * 126 + '}'),
              ('pdepth125-str-brackets', '{"d":' * 125 + '"[[[[{{{{"' + '}' * 125),
              ('pdepth127b-arr-empty-obj', '{"d":' + '[' * 125 + '{}' + ']' * 125 + '}'),
              ('lone-surrogate', '{"a":"\\ud800"}'), ('escaped-e', '{"a":"\\u00e9"}'), ('escaped-slash', '{"a":"\\/"}'),
              ('upper-u-escape', '{"a":"\\u001F"}'), ('lower-u-escape', '{"a":"\\u001f"}'), ('raw-del', '{"a":"\x7f"}'),
              ('u2028', '{"a":"\u2028"}'), ('astral-sort', '{"\ufb01":1,"\U0001f600":2}'), ('astral-sort-cp', '{"\U0001f600":2,"\ufb01":1}'),
              ('dup-key', '{"a":1,"a":1}'), ('dup-key-deep', '{"x":{"a":1,"a":2}}'), ('empty-key', '{"":1}'),
              ('ws-payload', '{"a": 1}'), ('nan', '{"a":NaN}'), ('leading-zero', '{"a":01}'), ('trailing-comma', '{"a":1,}'),
              ('ctrl-raw', '{"a":"\x01"}'), ('esc-b', '{"a":"\\b"}'), ('esc-u0008', '{"a":"\\u0008"}'),
              ]:
    lines = chain(SEED1, ['{}', p])
    add('self-payload-' + nm, j(lines))

# field rules with valid signatures
fieldmods = {
    'ts-backward': {2: dict(ts=ts(0))}, 'ts-equal': {2: dict(ts=ts(1))},
    'ts-feb29-2026': {2: dict(ts='2026-02-29T00:00:00.000000Z')}, 'ts-feb29-2024': {1: dict(ts='2024-02-29T00:00:00.000000Z'), 0: dict(ts='2024-01-01T00:00:00.000000Z'), 2: dict(ts='2024-03-01T00:00:00.000000Z')},
    'ts-year0': {0: dict(ts='0000-01-01T00:00:00.000000Z')}, 'ts-sec60': {2: dict(ts='2026-11-24T10:15:60.000000Z')},
    'ts-lower-t': {2: dict(ts='2026-11-24t10:15:05.000000Z')}, 'ts-offset': {2: dict(ts='2026-11-24T10:15:05.000000+00:00')},
    'ts-5frac': {2: dict(ts='2026-11-24T10:15:05.00000Z')}, 'ts-hour24': {2: dict(ts='2026-11-24T24:00:00.000000Z')},
    'ts-year9999': {2: dict(ts='9999-12-31T23:59:59.999999Z')},
    'dup-nonce': {2: dict(nonce=nonce(1))}, 'nonce-upper': {2: dict(nonce=nonce(0xabc, 0xdef).upper())}, 'nonce-lower-hex': {2: dict(nonce=nonce(0xabc, 0xdef))},
    'nonce-v1': {2: dict(nonce='00000001-0000-1000-8000-000000000002')}, 'nonce-variant-c': {2: dict(nonce='00000001-0000-4000-c000-000000000002')},
    'nonce-braced': {2: dict(nonce='{' + nonce(2) + '}')}, 'nonce-nohyphen': {2: dict(nonce=nonce(2).replace('-', ''))},
    'type-64': {2: dict(typ='a' * 64)}, 'type-65': {2: dict(typ='a' * 65)}, 'type-empty': {2: dict(typ='')},
    'type-genesis-at-1': {1: dict(typ='genesis')}, 'type-space': {2: dict(typ='a b')}, 'type-unicode': {2: dict(typ='é')},
    'type-allchars': {2: dict(typ='AZaz09_.:/-')}, 'genesis-type-other': {0: dict(typ='start')},
    'pk-at-1': {1: dict(pk=True)}, 'no-pk-genesis': {0: dict(pk=False)},
    'agent-other': {2: dict(agent=V.agent_id_of(V.public_key(SEED2)))},
    'agent-badchar': {2: dict(agent='0' * 32)},
    'genesis-prev-nonzero': {0: dict(prev='1' * 64)}, 'prev-upper': {2: dict(prev='A' * 64)},
    'seq-gap': {2: dict(seq=3)}, 'seq-dup': {2: dict(seq=1)},
    'sig-other-key': {2: dict(sigf=lambda m: V.sign(SEED2, m))},
    'extra-member': {2: dict(extra=[('zzz', '1')])},
}
for nm, m in fieldmods.items():
    add('self-field-' + nm, j(chain(SEED1, ['{}', '{"x":1}', '{}'], mods=m)))

# signature forgeries with the secret key: torsion in R, identity R, non-canonical S
T = V.torsion_points()
for ti, tp in enumerate(T):
    for pos in (0, 2):
        add('self-torsionR-%d-ev%d' % (ti, pos), j(chain(SEED1, ['{}', '{"x":1}'], mods={pos: dict(sigf=lambda m, tp=tp: V.sign(SEED1, m, torsion=tp))})))
ident = V.compress(V.IDENT)
for pos in (0, 1):
    add('self-identityR-ev%d' % pos, j(chain(SEED1, ['{}'], mods={pos: dict(sigf=lambda m: V.sign(SEED1, m, raw_R=ident))})))
for ti, tp in enumerate(T):
    add('self-smallorderR-%d' % ti, j(chain(SEED1, ['{}'], mods={1: dict(sigf=lambda m, tp=tp: V.sign(SEED1, m, raw_R=V.compress(tp)))})))
def noncanon_s(m):
    s = V.sign(SEED1, m); S = int.from_bytes(s[32:], 'little') + V.L
    return s[:32] + S.to_bytes(32, 'little')
add('self-S-plus-L', j(chain(SEED1, ['{}'], mods={1: dict(sigf=noncanon_s)})))
# torsion on a real accord signature (no secret key): R' = R + T
def torsion_real(line, tp):
    o = json.loads(line); sig = V.b64url_decode(o['signature'], 64)
    R = V.decompress(sig[:32]); R2 = V.compress(V.padd(R, tp))
    return line.replace(o['signature'].encode(), V.b64url_encode(R2 + sig[32:]).encode())

# seal rules, signed
h = lambda ln: hashlib.sha256(ln).hexdigest()
ev = base[:-1]
for nm, s in [('count-wrong', seal_line(SEED1, 3, h(ev[-1]))), ('count-big', seal_line(SEED1, 5, h(ev[-1]))),
              ('head-wrong', seal_line(SEED1, 4, h(ev[-2]))), ('agent-other', seal_line(SEED1, 4, h(ev[-1]), agent=V.agent_id_of(V.public_key(SEED2)))),
              ('other-key', seal_line(SEED1, 4, h(ev[-1]), sigseed=SEED2)), ('count-float', seal_line(SEED1, 4, h(ev[-1]), countlit='4.0')),
              ('count-neg', seal_line(SEED1, 4, h(ev[-1]), countlit='-4')), ('count-2p53', seal_line(SEED1, 4, h(ev[-1]), countlit='9007199254740992')),
              ('count-string', seal_line(SEED1, 4, h(ev[-1]), countlit='"4"')), ('extra-member', seal_line(SEED1, 4, h(ev[-1]), extra=[('x', '1')])),
              ('at-bad', seal_line(SEED1, 4, h(ev[-1]), at='2026-13-01T00:00:00.000000Z')), ('at-old', seal_line(SEED1, 4, h(ev[-1]), at='2000-01-01T00:00:00.000000Z')),
              ('count-exp', seal_line(SEED1, 4, h(ev[-1]), countlit='4e0')), ('count-neg0', seal_line(SEED1, 0, h(ev[-1]), countlit='-0'))]:
    add('self-seal-' + nm, j(ev + [s]))
add('self-seal-first', j([base[-1]] + ev))
add('self-seal-twice', j(base + [base[-1]]))
add('self-unsealed', j(ev))
add('self-seal-only', j([base[-1]]))
add('self-seal-after-1', j(ev[:1] + [seal_line(SEED1, 1, h(ev[0]))] + ev[1:]))
add('self-splice-other', j(ev[:2] + base2[1:2] + ev[2:]))
add('self-second-genesis', j(ev + base2[:1]))
big = chain(SEED1, ['{"a":"' + 'x' * (1048576 - 300) + '"}'])
add('self-big-line', j(big))
for pad in (-400, -390, -380, -370, -360):
    pl = '{"a":"' + 'x' * (1048576 + pad) + '"}'
    add('self-near-limit-%d' % pad, j(chain(SEED1, [pl])))

# long chains: batch mode (4.3) with full batches of 64 and the chain-key table
def sigmod(kind):
    if kind == 'identityR': return dict(sigf=lambda m: V.sign(SEED1, m, raw_R=ident))
    if kind == 'identityR-noncanon': return dict(sigf=lambda m: V.sign(SEED1, m, raw_R=(1 + V.P).to_bytes(32, 'little')))
    if kind == 'identityR-negzero': return dict(sigf=lambda m: V.sign(SEED1, m, raw_R=bytes([1] + [0] * 30 + [0x80])))
    if kind.startswith('torsion'): return dict(sigf=lambda m: V.sign(SEED1, m, torsion=T[int(kind[-1])]))
    if kind.startswith('smallR'): return dict(sigf=lambda m: V.sign(SEED1, m, raw_R=V.compress(T[int(kind[-1])])))
    if kind == 'S+L': return dict(sigf=noncanon_s)
    if kind == 'otherkey': return dict(sigf=lambda m: V.sign(SEED2, m))
    raise KeyError(kind)
LONG = 140
pl = ['{"i":%d}' % i for i in range(1, LONG)]
add('long-ok', j(chain(SEED1, pl)))
for pos in (1, 10, 63, 64, 65, 100, 127, 128, 139):
    for kind in ('identityR', 'torsion3', 'S+L'):
        add('long-%s-at%d' % (kind, pos), j(chain(SEED1, pl, mods={pos: sigmod(kind)})))
for kind in ('identityR-noncanon', 'identityR-negzero', 'smallR1', 'smallR4', 'torsion1', 'torsion4', 'torsion7', 'otherkey'):
    add('long-%s-at70' % kind, j(chain(SEED1, pl, mods={70: sigmod(kind)})))
# bad signature before a structural fault: the signature must be reported (4.1 step 6)
add('long-badsig80-seqgap85', j(chain(SEED1, pl, mods={80: sigmod('otherkey'), 85: dict(seq=999)})))
add('long-badsig63-seqgap64', j(chain(SEED1, pl, mods={63: sigmod('otherkey'), 64: dict(seq=999)})))
add('long-badsig130-seal', j(chain(SEED1, pl, mods={130: sigmod('otherkey')})[:-1] + [seal_line(SEED1, 3, '0' * 64)]))
add('long-identityR139-bad-seal', j(chain(SEED1, pl, mods={139: sigmod('identityR')})[:-1] + [seal_line(SEED2, 3, '0' * 64)]))
lc = chain(SEED1, pl, mods={50: sigmod('otherkey')})
add('long-badsig50-blank60', j(lc[:60] + [b''] + lc[60:]))
add('long-badsig50-garbage60', j(lc[:60] + [b'garbage'] + lc[60:]))
add('long-badsig50-blank139', j(lc[:139] + [b''] + lc[139:]))
sc = chain(SEED1, ['{}'] * 8, mods={2: sigmod('otherkey')})
add('short-badsig2-blank5', j(sc[:5] + [b''] + sc[5:]))
add('short-badsig2-blank-at-end', j(sc + [b'']))
add('short-badsig2-after-seal', j(sc + sc[-1:]))
sq = chain(SEED1, ['{}'] * 8, mods={2: dict(seq=7)})
add('short-seqgap2-blank5', j(sq[:5] + [b''] + sq[5:]))
add('short-seqgap2-garbage5', j(sq[:5] + [b'x'] + sq[5:]))
add('short-seqgap2-toolong5', j(sq[:5] + [b'x' * 1048577] + sq[5:]))
add('short-seqgap2-crlf-at-end', j(sq[:-1] + [sq[-1] + b'\r']))
add('long-badsig50-toolong60', j(lc[:60] + [b'x' * 1048577] + lc[60:]))
# exact size limit
def sized(n):
    pad = 1000
    while True:
        ls = chain(SEED1, ['{"a":"' + 'x' * pad + '"}'])
        d = len(ls[1]) - n
        if d == 0: return ls
        pad -= d
for n in (1048575, 1048576, 1048577):
    add('self-size-%d' % n, j(sized(n)))
# invalid UTF-8 and escaped surrogates
for nm, raw in [('utf8-surrogate', b'"\xed\xa0\x80"'), ('utf8-overlong', b'"\xc0\xaf"'), ('utf8-beyond', b'"\xf4\x90\x80\x80"'),
                ('utf8-trunc', b'"\xe2\x82"'), ('esc-pair', b'"\\ud83d\\ude00"'), ('esc-pair-reversed', b'"\\ude00\\ud83d"'),
                ('raw-astral', '"\U0001f600"'.encode())]:
    ls = chain(SEED1, ['{}'])
    ls[1] = ls[1].replace(b'"payload":{}', b'"payload":{"a":' + raw + b'}')
    add('self-bytes-' + nm, j(ls))
add('self-field-genesis-agent-other', j(chain(SEED1, ['{}'], mods={0: dict(agent=V.agent_id_of(V.public_key(SEED2)))})))
sigstr = 'A' * 86
add('self-payload-key-signature', j(chain(SEED1, ['{}', '{"signature":"%s"}' % sigstr])))
add('self-payload-str-signature', j(chain(SEED1, ['{}', '{"z":",\\"signature\\":\\"%s\\""}' % sigstr])))
add('self-payload-key-public_key', j(chain(SEED1, ['{}', '{"public_key":"%s"}' % V.b64url_encode(V.public_key(SEED1))])))
add('self-payload-key-format', j(chain(SEED1, ['{"format":"accord-export-seal/1"}'])))
for nm, pkb in [('y-ge-p', (V.P + 1).to_bytes(32, 'little')), ('negzero-identity', bytes([1] + [0] * 30 + [0x80])),
                ('y-2p255-1', bytes([0xff] * 31 + [0x7f])), ('order2', (V.P - 1).to_bytes(32, 'little')),
                ('not-on-curve', (2).to_bytes(32, 'little'))]:
    ls = list(base); o = json.loads(ls[0])
    ls[0] = ls[0].replace(o['public_key'].encode(), V.b64url_encode(pkb).encode())
    add('self-pk-' + nm, j(ls))
ls = list(base); o = json.loads(ls[-1]); ls[-1] = ls[-1].replace(o['head_hash'].encode(), o['head_hash'].upper().encode())
add('self-seal-head-upper', j(ls))
add('self-seal-format-event-members', j(ev + [ev[-1].replace(b'"accord-event/1"', b'"accord-export-seal/1"')]))
add('self-archive-first-line', j([b'{"format":"accord-archive/1"}'] + base))

# ------------------------------------------------------------------ mutations of real and self exports
def mutate_all(tag, data):
    lines = data.split(b'\n')[:-1]
    n = len(lines)
    add(tag + '-orig', data)
    add(tag + '-crlf', data.replace(b'\n', b'\r\n'))
    add(tag + '-bom', b'\xef\xbb\xbf' + data)
    add(tag + '-no-final-lf', data[:-1])
    add(tag + '-extra-blank', data + b'\n')
    add(tag + '-leading-blank', b'\n' + data)
    add(tag + '-trailing-space', data[:-1] + b' \n')
    add(tag + '-empty', b'')
    add(tag + '-only-lf', b'\n')
    for k in range(1, 12):
        cut = rnd.randrange(1, len(data))
        add(tag + '-trunc-%d' % k, data[:cut])
    for i in range(n):
        L = lines[i]
        def rep(nl, nm):
            ls = list(lines); ls[i] = nl; add('%s-l%d-%s' % (tag, i + 1, nm), j(ls))
        ls = list(lines); del ls[i]; add('%s-l%d-del' % (tag, i + 1), j(ls))
        ls = list(lines); ls.insert(i, lines[i]); add('%s-l%d-dup' % (tag, i + 1), j(ls))
        if i + 1 < n:
            ls = list(lines); ls[i], ls[i + 1] = ls[i + 1], ls[i]; add('%s-l%d-swap' % (tag, i + 1), j(ls))
        ls = list(lines); ls.insert(i, b''); add('%s-l%d-blank-before' % (tag, i + 1), j(ls))
        for k in range(14):
            p = rnd.randrange(len(L)); b = L[p] ^ (1 << rnd.randrange(7))
            rep(L[:p] + bytes([b]) + L[p + 1:], 'flip%d' % k)
        for k in range(3):
            p = rnd.randrange(len(L)); rep(L[:p] + L[p + 1:], 'delbyte%d' % k)
        for k in range(3):
            p = rnd.randrange(len(L)); rep(L[:p] + b' ' + L[p:], 'space%d' % k)
        rep(L + b' ', 'trail-space'); rep(b' ' + L, 'lead-space'); rep(L + b'\t', 'trail-tab'); rep(L + b'\r', 'trail-cr')
        rep(L.replace(b'":', b'": ', 1), 'ws-colon'); rep(L.replace(b',"', b', "', 1), 'ws-comma')
        try:
            o = json.loads(L)
        except Exception:
            continue
        # reorder members
        ks = list(o)
        sw = ks[:]; sw[0], sw[1] = sw[1], sw[0]
        rep(json.dumps({k: o[k] for k in sw}, ensure_ascii=False, separators=(',', ':')).encode(), 'reorder')
        rep(L[:-1] + b',"format":' + json.dumps(o['format']).encode() + b'}', 'dup-format')
        rep(L[:1] + b'"agent_id":' + json.dumps(o['agent_id']).encode() + b',' + L[1:], 'dup-agent-first')
        rep(L[:-1] + b',"zz":null}', 'extra-member')
        rep(L[:-1] + b',"zz":1e400}', 'extra-huge-number')
        for key in ('seq', 'count'):
            m = re.search((r'"%s":(\d+)' % key).encode(), L)
            if m:
                v = m.group(1)
                for nm, nv in [('dot0', v + b'.0'), ('e0', v + b'e0'), ('E0', v + b'E0'), ('neg', b'-' + v), ('lz', b'0' + v),
                               ('plus1', str(int(v) + 1).encode()), ('big', b'9007199254740992'), ('max', b'9007199254740991'),
                               ('str', b'"' + v + b'"'), ('huge', b'1e309'), ('neg0', b'-0'), ('plus', b'+' + v),
                               ('trail-dot', v + b'.'), ('hex', b'0x' + v), ('e-plus0', v + b'e+0'), ('bare-e', v + b'e'),
                               ('true', b'true'), ('null', b'null'), ('array', b'[' + v + b']')]:
                    rep(L[:m.start(1)] + nv + L[m.end(1):], '%s-%s' % (key, nm))
        # drop each member
        for k in ks:
            oo = dict(o); del oo[k]
            rep(json.dumps(oo, ensure_ascii=False, separators=(',', ':')).encode(), 'drop-' + k)
        # escapes
        if b'\xc3\xa9' in L: rep(L.replace(b'\xc3\xa9', b'\\u00e9', 1), 'esc-e')
        if b'/' in L: rep(L.replace(b'/', b'\\/', 1), 'esc-slash')
        rep(L.replace(b'"format"', b'"\\u0066ormat"', 1), 'esc-key')
        rep(json.dumps(o, ensure_ascii=True, separators=(',', ':')).encode(), 'ascii-escapes')
        # signature mutations
        if 'signature' in o:
            sg = o['signature']
            for k in range(4):
                p = rnd.randrange(86); c = rnd.choice(V.B64.replace(sg[p], ''))
                rep(L.replace(sg.encode(), (sg[:p] + c + sg[p + 1:]).encode()), 'sigchar%d' % k)
            lastc = V.B64.index(sg[-1]); rep(L.replace(sg.encode(), (sg[:-1] + V.B64[lastc ^ 1]).encode()), 'sig-trailing-bits')
            rep(L.replace(sg.encode(), (sg + '==').encode()), 'sig-padded')
            rep(L.replace(sg.encode(), sg[:-1].encode()), 'sig-short')
            rep(L.replace(sg.encode(), sg.replace('-', '+').replace('_', '/').encode()), 'sig-std-b64')
            for ti in (1, 4, 7):
                rep(torsion_real(L, T[ti]), 'torsionR%d' % ti)
            sig = V.b64url_decode(sg, 64); S = int.from_bytes(sig[32:], 'little') + V.L
            if S < 2 ** 256:
                rep(L.replace(sg.encode(), V.b64url_encode(sig[:32] + S.to_bytes(32, 'little')).encode()), 'sig-S-plus-L')
        if 'public_key' in o:
            pkb = V.b64url_decode(o['public_key'], 32)
            for nm, nb in [('identity', V.compress(V.IDENT)), ('torsion', V.compress(V.padd(V.decompress(pkb), T[1])))]:
                rep(L.replace(o['public_key'].encode(), V.b64url_encode(nb).encode()), 'pk-' + nm)

for f in sorted(os.listdir(os.path.join(HERE, 'seeds'))):
    mutate_all(f.replace('.jsonl', ''), open(os.path.join(HERE, 'seeds', f), 'rb').read())
mutate_all('self', j(base))
# cross-agent: A's events followed by B's seal, etc.
A = open(os.path.join(HERE, 'seeds', 'agentA.jsonl'), 'rb').read().split(b'\n')[:-1]
Bb = open(os.path.join(HERE, 'seeds', 'agentB.jsonl'), 'rb').read().split(b'\n')[:-1]
add('cross-A-events-B-seal', j(A[:-1] + Bb[-1:]))
add('cross-B-genesis-A-rest', j(Bb[:1] + A[1:]))
add('cross-concat', j(A + Bb))
add('cross-A-then-B-events', j(A[:-1] + Bb[1:]))

if __name__ == '__main__':
    import shutil
    shutil.rmtree(OUT, ignore_errors=True); os.makedirs(OUT)
    for nm, d in cases.items():
        open(os.path.join(OUT, nm + '.jsonl'), 'wb').write(d)
    print('%d cases written to %s' % (len(cases), OUT))
