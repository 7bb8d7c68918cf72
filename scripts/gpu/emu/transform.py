# transform.py SRC.cu DST.cpp - rewrites kernel launches k<<<g, b, ...>>>(args)
# into emu_launch(threaded, g, b, [&]() { k(args); }) for the host emulator;
# "threaded" when the kernel body synchronises (__syncthreads, cu_block_sum).
# Template kernels are launched as k<args><<<...>>>(...) (k_npool_forward<2>).
import re, sys, pathlib
src, dst = sys.argv[1], sys.argv[2]
s = pathlib.Path(src).read_text()
# which kernels synchronise (block reductions)
threaded = {}
for m in re.finditer(r'__global__\s+void\s+(\w+)\s*\(', s):
    name = m.group(1)
    i = s.index('{', m.end())
    depth, j = 0, i
    while True:
        if s[j] == '{': depth += 1
        elif s[j] == '}':
            depth -= 1
            if depth == 0: break
        j += 1
    body = s[i:j]
    threaded[name] = ('__syncthreads' in body) or ('cu_block_sum' in body)
out, pos = [], 0
for m in re.finditer(r'(\w+)(<[^<>;]*>)?<<<', s):
    if m.start() < pos: continue
    name = m.group(1)
    targs = m.group(2) or ''
    k = s.index('>>>', m.end())
    cfg = s[m.end():k]
    parts, depth, cur = [], 0, ''
    for ch in cfg:
        if ch == ',' and depth == 0: parts.append(cur); cur = ''; continue
        if ch in '([': depth += 1
        if ch in ')]': depth -= 1
        cur += ch
    parts.append(cur)
    a = k + 3
    assert s[a] == '(', name
    depth, b = 0, a
    while True:
        if s[b] == '(': depth += 1
        elif s[b] == ')':
            depth -= 1
            if depth == 0: break
        b += 1
    args = s[a+1:b]
    out.append(s[pos:m.start()])
    out.append('emu_launch(%s, %s, %s, [&]() { %s(%s); })' % (
        'true' if threaded[name] else 'false', parts[0], parts[1], name + targs, args))
    pos = b + 1
out.append(s[pos:])
pathlib.Path(dst).write_text(''.join(out))
print(src, {k: v for k, v in threaded.items() if v})
