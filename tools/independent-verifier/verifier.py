#!/usr/bin/env python3
"""Independent verifier of Accord exports and single events, written from docs/PROTOCOL.md only
(sections 1.1-1.8, 2, 3, 4, 5, 13). Pure Python 3.11 standard library; Ed25519 per PROTOCOL 1.3.

Usage: verifier.py FILE [--allow-unsealed] [--json]
Output (--json): {"ok": bool, "line": int|null, "reason": str}
"""
import hashlib, json, re, sys, datetime

# ---------------------------------------------------------------- Ed25519 (RFC 8032 + PROTOCOL 1.3/1.4)
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENT = (0, 1, 1, 0)

def padd(p1, p2):
    X1, Y1, Z1, T1 = p1; X2, Y2, Z2, T2 = p2
    A = (Y1 - X1) * (Y2 - X2) % P; B = (Y1 + X1) * (Y2 + X2) % P
    C = 2 * T1 * T2 * D % P; Dd = 2 * Z1 * Z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)

def pmul(s, p):
    q = IDENT
    while s > 0:
        if s & 1: q = padd(q, p)
        p = padd(p, p); s >>= 1
    return q

def pneg(p):
    X, Y, Z, T = p
    return ((-X) % P, Y, Z, (-T) % P)

def peq(p1, p2):
    X1, Y1, Z1, _ = p1; X2, Y2, Z2, _ = p2
    return (X1 * Z2 - X2 * Z1) % P == 0 and (Y1 * Z2 - Y2 * Z1) % P == 0

def recover_x(y, sign):
    if y >= P: return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0: x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0: return None
    if (x & 1) != sign: x = P - x
    return x

def decompress(b):
    """Returns point or None. Refuses y >= p and negative zero (so only canonical encodings)."""
    if len(b) != 32: return None
    y = int.from_bytes(b, 'little'); sign = y >> 255; y &= (1 << 255) - 1
    x = recover_x(y, sign)
    if x is None: return None
    return (x, y, 1, x * y % P)

def compress(p):
    X, Y, Z, _ = p
    zi = pow(Z, P - 2, P); x = X * zi % P; y = Y * zi % P
    return int.to_bytes(y | ((x & 1) << 255), 32, 'little')

GY = 4 * pow(5, P - 2, P) % P
B = (recover_x(GY, 0), GY, 1, recover_x(GY, 0) * GY % P)

def small_order(p):
    return peq(pmul(8, p), IDENT)

_keycache = {}
def valid_pubkey(b):
    """PROTOCOL 1.4."""
    if b in _keycache: return _keycache[b]
    A = decompress(b)
    ok = A is not None and compress(A) == b and not small_order(A) and peq(pmul(L, A), IDENT)
    _keycache[b] = A if ok else None
    return _keycache[b]

_sigcache = {}
def verify_strict(pk, msg, sig):
    """PROTOCOL 1.3 rules 1-4."""
    key = (pk, msg, sig)
    if key in _sigcache: return _sigcache[key]
    r = _verify(pk, msg, sig); _sigcache[key] = r; return r

def _verify(pk, msg, sig):
    if len(sig) != 64: return False
    Rb, S = sig[:32], int.from_bytes(sig[32:], 'little')
    if S >= L: return False                       # rule 1
    R = decompress(Rb)
    if R is None or small_order(R): return False  # rule 2
    A = decompress(pk)
    if A is None or small_order(A): return False  # rule 3
    k = int.from_bytes(hashlib.sha512(Rb + pk + msg).digest(), 'little') % L
    Q = padd(pmul(S, B), pneg(pmul(k, A)))        # rule 4 (cofactorless)
    return compress(Q) == Rb

# signing helpers (used by mutate.py to forge test cases with public test seeds)
def seed_to_scalar(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], 'little'); a &= (1 << 254) - 8; a |= 1 << 254
    return a, h[32:]

def public_key(seed):
    a, _ = seed_to_scalar(seed); return compress(pmul(a, B))

def sign(seed, msg, torsion=None, raw_R=None):
    a, prefix = seed_to_scalar(seed); A = compress(pmul(a, B))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), 'little') % L
    Rp = pmul(r, B)
    if torsion is not None: Rp = padd(Rp, torsion)
    Rb = compress(Rp) if raw_R is None else raw_R
    k = int.from_bytes(hashlib.sha512(Rb + A + msg).digest(), 'little') % L
    if raw_R is not None: r = 0
    S = (r + k * a) % L
    return Rb + int.to_bytes(S, 32, 'little')

def torsion_points():
    """The 8 points of the 8-torsion subgroup."""
    pts = []
    # a point of order 8: found by multiplying a random point by L
    y = 2
    while True:
        x = recover_x(y, 0)
        if x is not None:
            Q = pmul(L, (x, y, 1, x * y % P))
            if not peq(pmul(4, Q), IDENT):
                break
        y += 1
    T = Q; cur = IDENT
    for _ in range(8):
        pts.append(cur); cur = padd(cur, T)
    return pts

# ---------------------------------------------------------------- primitives (PROTOCOL 1.1-1.8)
B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
def b58(b):
    n = int.from_bytes(b, 'big'); s = ''
    while n: n, r = divmod(n, 58); s = B58[r] + s
    for c in b:
        if c == 0: s = '1' + s
        else: break
    return s

def agent_id_of(pk): return b58(hashlib.sha256(pk).digest())[:32]

B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
def b64url_decode(s, nbytes):
    """PROTOCOL 1.2: one spelling only. Returns bytes or None."""
    if not isinstance(s, str) or any(c not in B64 for c in s): return None
    if len(s) != (nbytes * 8 + 5) // 6: return None
    bits = 0; nb = 0; out = bytearray()
    for c in s:
        bits = (bits << 6) | B64.index(c); nb += 6
        if nb >= 8:
            nb -= 8; out.append((bits >> nb) & 0xff); bits &= (1 << nb) - 1
    if bits != 0: return None  # non-zero unused trailing bits
    return bytes(out) if len(out) == nbytes else None

def b64url_encode(b):
    import base64
    return base64.urlsafe_b64encode(b).decode().rstrip('=')

HEX64 = re.compile(r'[0-9a-f]{64}\Z')
NONCE = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z')
TS = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z')
TYPE = re.compile(r'[A-Za-z0-9_.:/-]{1,64}\Z')

def valid_ts(s):
    if not isinstance(s, str) or not TS.match(s) or len(s) != 27: return False
    try:
        y, mo, d = int(s[0:4]), int(s[5:7]), int(s[8:10])
        h, mi, se = int(s[11:13]), int(s[14:16]), int(s[17:19])
        if y < 1: return False
        datetime.datetime(y, mo, d, h, mi, se)
        return True
    except ValueError:
        return False

def valid_agent_id(s):
    return isinstance(s, str) and len(s) == 32 and all(c in B58 for c in s)

# ---------------------------------------------------------------- JSON (PROTOCOL 2)
class Bad(Exception):
    pass

class Num:
    """A JSON number literal with its spelling kept."""
    __slots__ = ('lit', 'is_int', 'val')
    def __init__(self, lit):
        self.lit = lit
        self.is_int = not any(c in lit for c in '.eE')
        if self.is_int:
            v = int(lit)
            if abs(v) > 2**64 - 1:
                try:
                    f = float(lit)
                except OverflowError:
                    raise Bad('number beyond double range')
                if f in (float('inf'), float('-inf')): raise Bad('number beyond double range')
            self.val = v
        else:
            f = float(lit)
            if f in (float('inf'), float('-inf')): raise Bad('number beyond double range')
            self.val = f

def _const(c): raise Bad('NaN/Infinity')

def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d: raise Bad('duplicate key')
        d[k] = v
    return d

def _check_str(s):
    for ch in s:
        if 0xD800 <= ord(ch) <= 0xDFFF: raise Bad('unpaired surrogate')

def _walk(v, depth):
    if isinstance(v, (dict, list)):
        depth += 1
        if depth > 127: raise Bad('depth')
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            if isinstance(k, str): _check_str(k)
            _walk(x, depth)
    elif isinstance(v, str):
        _check_str(v)

def parse_json(b):
    """Strict parse per PROTOCOL 2. Raises Bad."""
    if b.startswith(b'\xef\xbb\xbf'): raise Bad('BOM')
    try:
        t = b.decode('utf-8', errors='strict')
    except UnicodeDecodeError:
        raise Bad('invalid utf-8')
    # nesting pre-check without recursion (the json module would overflow the stack otherwise)
    depth = 0; ins = False; esc = False; mx = 0
    for ch in t:
        if ins:
            if esc: esc = False
            elif ch == '\\': esc = True
            elif ch == '"': ins = False
        elif ch == '"': ins = True
        elif ch in '[{':
            depth += 1; mx = max(mx, depth)
            if mx > 127: raise Bad('depth')
        elif ch in ']}': depth -= 1
    try:
        v = json.loads(t, object_pairs_hook=_pairs, parse_float=Num, parse_int=Num,
                       parse_constant=_const)
    except Bad: raise
    except (ValueError, RecursionError) as e:
        raise Bad('json: %s' % e)
    _walk(v, 0)
    return v

def check_signed_numbers(v):
    if isinstance(v, Num):
        if not v.is_int: raise Bad('float')
        if abs(v.val) > 2**53 - 1: raise Bad('number range')
        if v.lit == '-0': raise Bad('float')  # -0 is refused (PROTOCOL 2)
    elif isinstance(v, dict):
        for x in v.values(): check_signed_numbers(x)
    elif isinstance(v, list):
        for x in v: check_signed_numbers(x)

def _u16(k): return k.encode('utf-16-be')

def jcs_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"': out.append('\\"')
        elif ch == '\\': out.append('\\\\')
        elif o == 8: out.append('\\b')
        elif o == 9: out.append('\\t')
        elif o == 10: out.append('\\n')
        elif o == 12: out.append('\\f')
        elif o == 13: out.append('\\r')
        elif o < 0x20: out.append('\\u%04x' % o)
        else: out.append(ch)
    out.append('"'); return ''.join(out)

def jcs(v):
    """Only used on documents whose numbers are safe integers (checked before)."""
    if v is True: return 'true'
    if v is False: return 'false'
    if v is None: return 'null'
    if isinstance(v, Num): return str(v.val) if v.is_int else repr(v.val)
    if isinstance(v, int): return str(v)
    if isinstance(v, str): return jcs_str(v)
    if isinstance(v, list): return '[' + ','.join(jcs(x) for x in v) + ']'
    if isinstance(v, dict):
        return '{' + ','.join(jcs_str(k) + ':' + jcs(v[k]) for k in sorted(v, key=_u16)) + '}'
    raise TypeError(v)

# ---------------------------------------------------------------- events (PROTOCOL 3, 4.1 step 1)
MAX_EVENT_BYTES = 1048576
EVENT_MEMBERS = {'agent_id', 'format', 'nonce', 'payload', 'prev_hash', 'seq', 'signature',
                 'timestamp', 'type'}

def isnum(v): return isinstance(v, Num)

def parse_event(b):
    """4.1 step 1. Returns dict with decoded fields, raises Bad."""
    if len(b) > MAX_EVENT_BYTES: raise Bad('too large')
    v = parse_json(b)
    if not isinstance(v, dict): raise Bad('not an object')
    keys = set(v)
    if not (keys == EVENT_MEMBERS or keys == EVENT_MEMBERS | {'public_key'}): raise Bad('members')
    for k in ('agent_id', 'format', 'nonce', 'prev_hash', 'signature', 'timestamp', 'type'):
        if not isinstance(v[k], str): raise Bad('type of ' + k)
    if 'public_key' in v and not isinstance(v['public_key'], str): raise Bad('type of public_key')
    if not isinstance(v['payload'], dict): raise Bad('payload not object')
    if not isnum(v['seq']): raise Bad('seq not number')
    if v['format'] != 'accord-event/1': raise Bad('unknown format')
    if not valid_agent_id(v['agent_id']): raise Bad('agent_id syntax')
    if not NONCE.match(v['nonce']): raise Bad('nonce')
    if not HEX64.match(v['prev_hash']): raise Bad('prev_hash')
    pk = None
    if 'public_key' in v:
        pk = b64url_decode(v['public_key'], 32)
        if pk is None or valid_pubkey(pk) is None: raise Bad('public_key')
    seqn = v['seq']
    if not seqn.is_int or seqn.lit == '-0' or seqn.val < 0 or seqn.val > 2**53 - 1: raise Bad('seq')
    seq = seqn.val
    sig = b64url_decode(v['signature'], 64)
    if sig is None: raise Bad('signature encoding')
    if not valid_ts(v['timestamp']): raise Bad('timestamp')
    t = v['type']
    if seq == 0:
        if t != 'genesis': raise Bad('type')
    else:
        if t == 'genesis' or not TYPE.match(t): raise Bad('type')
    if (pk is not None) != (seq == 0): raise Bad('genesis public_key')
    if pk is not None and agent_id_of(pk) != v['agent_id']: raise Bad('agent_id derivation')
    if seq == 0 and v['prev_hash'] != '0' * 64: raise Bad('genesis prev_hash')
    check_signed_numbers(v['payload'])
    if jcs(v).encode() != b: raise Bad('not canonical')
    unsigned = dict(v); del unsigned['signature']
    return {'obj': v, 'seq': seq, 'pk': pk, 'sig': sig, 'signing_input': jcs(unsigned).encode(),
            'hash': hashlib.sha256(b).hexdigest()}

# ---------------------------------------------------------------- export (PROTOCOL 5)
SEAL_MEMBERS = {'agent_id', 'count', 'exported_at', 'format', 'head_hash', 'signature'}

def verify_export(data, allow_unsealed=False):
    """Returns (ok, line, reason). line is the 1-based line of the failure, or None."""
    lines = data.split(b'\n')
    if data.endswith(b'\n'): lines.pop()
    if data == b'': lines = []
    # archive detection (5.1): not implemented
    if lines:
        try:
            first = parse_json(lines[0])
            if isinstance(first, dict) and first.get('format') == 'accord-archive/1':
                return (None, None, 'archive (not implemented)')
        except Bad:
            pass
    chain = []  # parsed events
    key = None; agent = None; nonces = set(); sealed = False
    for i, ln in enumerate(lines):
        no = i + 1
        if sealed: return (False, no, 'content after the seal')
        if ln == b'': return (False, no, 'empty line')
        if len(ln) > MAX_EVENT_BYTES: return (False, no, 'line too long')
        try:
            ev = parse_event(ln); everr = None
        except Bad as e:
            ev = None; everr = str(e)
        if ev is not None:
            o = ev['obj']; idx = len(chain)
            if idx == 0:
                if ev['seq'] != 0: return (False, no, 'no genesis')
                key = ev['pk']; agent = o['agent_id']
                if o['prev_hash'] != '0' * 64: return (False, no, 'link')
            else:
                prev = chain[-1]
                if o['agent_id'] != agent: return (False, no, 'agent mismatch')
                if ev['seq'] != prev['seq'] + 1: return (False, no, 'seq')
                if o['prev_hash'] != prev['hash']: return (False, no, 'prev_hash')
                if o['timestamp'] < prev['obj']['timestamp']: return (False, no, 'timestamp order')
            if o['nonce'] in nonces: return (False, no, 'duplicate nonce')
            if not verify_strict(key, ev['signing_input'], ev['sig']): return (False, no, 'signature')
            nonces.add(o['nonce']); chain.append(ev)
            continue
        # seal?
        try:
            s = parse_json(ln)
        except Bad:
            s = None
        if isinstance(s, dict) and s.get('format') == 'accord-export-seal/1':
            r = check_seal(ln, s, chain, key, agent)
            if r: return (False, no, 'seal: ' + r)
            sealed = True
            continue
        return (False, no, 'bad event: ' + everr)
    if not chain: return (False, 1, 'no genesis')  # 4.1: empty input, position 0
    if not sealed and not allow_unsealed: return (False, None, 'unsealed')
    return (True, None, 'ok')

def check_seal(ln, s, chain, key, agent):
    try:
        check_signed_numbers(s)
    except Bad as e:
        return str(e)
    if jcs(s).encode() != ln: return 'not canonical'
    if set(s) != SEAL_MEMBERS: return 'members'
    for k in ('agent_id', 'exported_at', 'head_hash', 'signature'):
        if not isinstance(s[k], str): return 'type of ' + k
    sig = b64url_decode(s['signature'], 64)
    if sig is None: return 'signature encoding'
    if not valid_agent_id(s['agent_id']): return 'agent_id syntax'
    if not HEX64.match(s['head_hash']): return 'head_hash syntax'
    if not valid_ts(s['exported_at']): return 'exported_at'
    c = s['count']
    if not isnum(c) or not c.is_int or c.val < 0: return 'count'
    if not chain: return 'no event before the seal'
    u = dict(s); del u['signature']
    if not verify_strict(key, jcs(u).encode(), sig): return 'signature'
    if s['agent_id'] != agent: return 'agent_id'
    if c.val != len(chain) or s['head_hash'] != chain[-1]['hash']: return 'count/head_hash'
    return None

def verify_single_event(b, key_b64=None):
    """Corpus format `event`."""
    try:
        ev = parse_event(b)
    except Bad as e:
        return (False, None, str(e))
    if ev['seq'] == 0: pk = ev['pk']
    else:
        pk = b64url_decode(key_b64 or '', 32)
        if pk is None or valid_pubkey(pk) is None: return (False, None, 'key')
        if agent_id_of(pk) != ev['obj']['agent_id']: return (False, None, 'agent-id')
    if not verify_strict(pk, ev['signing_input'], ev['sig']): return (False, None, 'signature')
    return (True, None, 'ok')

def verify_jcs(b):
    try:
        v = parse_json(b); check_signed_numbers(v)
        if jcs(v).encode() != b: return (False, None, 'canonical')
    except Bad as e:
        return (False, None, str(e))
    return (True, None, 'ok')

def main():
    args = sys.argv[1:]
    f = [a for a in args if not a.startswith('--')][0]
    r = verify_export(open(f, 'rb').read(), '--allow-unsealed' in args)
    if '--json' in args:
        print(json.dumps({'ok': r[0], 'line': r[1], 'reason': r[2]}))
    else:
        print(('ok' if r[0] else 'FAIL line %s: %s' % (r[1], r[2])))
    sys.exit(0 if r[0] else 1)

if __name__ == '__main__':
    main()
