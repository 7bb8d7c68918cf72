#!/usr/bin/env python3
"""compare_bench.py DIR - libcsnn against the SpikingJelly anchor on the GPU.

Reads what run_gpu_checks.sh wrote into DIR:
  csnn-MODE-bBATCH.json   `csnn bench --json` (one JSON object; other lines
                          are ignored)
  sj-BACKEND.jsonl        scripts/gpu/anchor_gpu.py (one JSON line per
                          configuration)
and prints, per configuration (mode, batch), libcsnn's samples/s and
ms/step, each SpikingJelly backend's, the best SpikingJelly backend, and the
ratio libcsnn / best (> 1: libcsnn is faster). Writes the same as JSON to
DIR/comparison.json. Standard library only. Exit status 0 (a missing
figure is reported, not an error).
"""
import glob
import json
import os
import sys


def last_json_object(path):
    """The last line of `path` that parses as a JSON object, else the whole
    file as one object, else None."""
    try:
        text = open(path, encoding='utf-8', errors='replace').read()
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except ValueError:
                pass
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    except ValueError:
        return None


def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else '-'


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else '.'
    configs = []
    libcsnn = {}
    for path in sorted(glob.glob(os.path.join(d, 'csnn-*-b*.json'))):
        name = os.path.basename(path)[len('csnn-'):-len('.json')]
        mode, b = name.rsplit('-b', 1)
        key = (mode, int(b))
        obj = last_json_object(path)
        libcsnn[key] = obj if obj is not None else {'error': 'no JSON in ' + os.path.basename(path)}
        configs.append(key)
    sj = {}  # backend -> {(mode, batch): obj}
    for path in sorted(glob.glob(os.path.join(d, 'sj-*.jsonl'))):
        backend = os.path.basename(path)[len('sj-'):-len('.jsonl')]
        sj.setdefault(backend, {})
        for line in open(path, encoding='utf-8', errors='replace'):
            line = line.strip()
            if not line.startswith('{'):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            key = (obj.get('mode'), obj.get('batch'))
            sj[backend][key] = obj
            if key not in configs:
                configs.append(key)
    order = {'train': 0, 'infer': 1}
    configs.sort(key=lambda k: (order.get(k[0], 9), k[1] or 0))
    backends = sorted(sj)

    rows = []
    head = '%-6s %6s | %-22s' % ('mode', 'batch', 'libcsnn: sam/s ms')
    for be in backends:
        head += ' | %-22s' % ('SJ %s: sam/s ms' % be)
    head += ' | %-8s | %s' % ('best SJ', 'libcsnn / best SJ')
    print(head)
    print('-' * len(head))
    for key in configs:
        mode, b = key
        lc = libcsnn.get(key, {})
        lsps = lc.get('samples_per_s')
        line = '%-6s %6s | %10s %10s ' % (mode, b, fmt(lsps, '.1f'), fmt(lc.get('ms_per_step'), '.2f'))
        if lsps is None:
            line = line[:-1] + '!'  # marks a missing libcsnn figure
        best, best_be = None, None
        row = {'mode': mode, 'batch': b, 'libcsnn': {k: lc.get(k) for k in
                                                    ('samples_per_s', 'ms_per_step', 'ms_min',
                                                     'peak_rss_mb', 'gflops', 'sgemm_gflops',
                                                     'error') if k in lc},
               'spikingjelly': {}}
        for be in backends:
            o = sj[be].get(key, {})
            sps = o.get('samples_per_s')
            line += '| %10s %10s ' % (fmt(sps, '.1f'), fmt(o.get('ms_per_step'), '.2f'))
            row['spikingjelly'][be] = {k: o.get(k) for k in
                                       ('samples_per_s', 'ms_per_step', 'ms_min', 'peak_mem_mb',
                                        'error') if k in o}
            if isinstance(sps, (int, float)) and (best is None or sps > best):
                best, best_be = sps, be
        ratio = lsps / best if isinstance(lsps, (int, float)) and best else None
        line += '| %-8s | %s' % (best_be or '-', ('%.2fx' % ratio) if ratio else '-')
        row['best_sj_backend'], row['ratio_vs_best_sj'] = best_be, ratio
        print(line)
        rows.append(row)
    # errors, so that a missing figure says why
    for key in configs:
        lc = libcsnn.get(key)
        if lc is None:
            print('  libcsnn %s b%s: not run' % key)
        elif 'error' in lc and lc.get('samples_per_s') is None:
            print('  libcsnn %s b%s: %s' % (key[0], key[1], str(lc['error'])[:200]))
        for be in backends:
            o = sj[be].get(key)
            if o is None:
                print('  SJ %s %s b%s: not run' % (be, key[0], key[1]))
            elif 'error' in o:
                print('  SJ %s %s b%s: %s' % (be, key[0], key[1], str(o['error'])[:200]))
    with open(os.path.join(d, 'comparison.json'), 'w', encoding='utf-8') as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
