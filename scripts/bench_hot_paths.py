#!/usr/bin/env python3
"""The hot paths of the fast compositor, measured beside nginx in one run.

    scripts/bench-hot-paths.sh                 # builds the release binary, then runs this
    scripts/bench_hot_paths.py --binary target/release/layercake [--baseline OLD] [--secs 8]

Everything runs on 127.0.0.1, is bounded in count and time, and stops by
itself. The image is the demo sofa (built-in renderer, no setup) at
512 px WebP q80; nginx (2 workers, sendfile, open_file_cache, as in
../shared/bench/peers) serves layercake's own answer as a static file, so
both send the same bytes. Figures from a shared 2-core box are only good
as ratios within one run.

1. hit: wrk -t2 -c64 --latency, rounds alternating nginx / layercake:
   development mode (no token, what peers.sh measures), If-None-Match
   answered 304, a private token in the query (bearer_token=), and a
   signed URL (HMAC-SHA256 checked on every request). With --baseline
   the same hit is run against an older binary in the same rounds.
2. miss, new size: one request at a time, a new width each: the image's
   stack kept from an earlier size (what a new size of a configuration
   already made costs), then the same on a server that keeps no stack
   (cache.flattened_bytes = 0: layers decoded in memory, stacked again);
   miss, fresh process: restarted before each request (layers read from
   the object store and decoded).
3. stampede: N connections ask one cold URL at once, on a fresh server
   (every layer to render) and on a new size (layers decoded). Renders and
   encodes counted from /metrics (one render per layer, one encode),
   bodies compared, process CPU time per request beside N hits' on the
   warm URL, waiters' p50/p99.
4. overload: 10x compose.concurrency connections asking distinct misses
   for --overload-secs while a light hit load (wrk -t1 -c8) measures p99,
   beside the same hit load on the idle server; the peak RSS (VmHWM)
   beside the cache budgets.
"""

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

SOFA = "03a29397-2265-40cd-8c45-41a1c4e12574"
CFG = {"Body": "Navy", "Pillows": "Teal", "Legs": "Brass Cone"}
KEY = "a" * 64  # a throwaway signing key, 32 bytes of hex
SUCCESS = 'result="success"'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None, timeout=120):
    """(status, headers with lower-case names, body)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def image_path(width=512, quality=80, **extra):
    q = {"assetId": SOFA, "configuration": _json(CFG), "format": "webp",
         "quality": str(quality), "width": str(width)}
    q.update(extra)
    return "/api/fast-compositor?" + urllib.parse.urlencode(q)


def _json(v):
    import json
    return json.dumps(v, separators=(",", ":"))


class Proc:
    """A server in its own session, stopped by its process group."""

    def __init__(self, argv, log, env=None):
        self.log = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()

    def cpu_secs(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0


def wait_http(url, proc, secs=60):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.p.poll() is not None:
            sys.exit(f"the server exited ({proc.p.returncode}); see {proc.log.name}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer within {secs} s")


class Layercake:
    def __init__(self, binary, work, name, config):
        self.binary, self.work, self.name = binary, work, name
        self.data = os.path.join(work, f"{name}-data")
        self.config = os.path.join(work, f"{name}.toml")
        with open(self.config, "w") as f:
            f.write(config)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def cli(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERCAKE_")}
        out = subprocess.run([self.binary, *args, "--config", self.config, "--data-dir", self.data],
                             env=env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAYERCAKE_")}
        self.proc = Proc([self.binary, "serve", "--config", self.config, "--listen",
                          f"127.0.0.1:{self.port}", "--data-dir", self.data],
                         os.path.join(self.work, f"{self.name}.log"), env)
        wait_http(self.base + "/healthz", self.proc)

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def metric(self, name, label=""):
        """The sum of the series of counter `name` on /metrics (those whose
        labels include `label`, e.g. 'result="success"', if given)."""
        status, _, body = get(self.base + "/metrics")
        if status != 200:
            sys.exit(f"/metrics answered {status}")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if label in line.rsplit(" ", 1)[0]:
                    total += float(line.rsplit(" ", 1)[1])
        return total


def nginx_start(work, body):
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    os.makedirs(os.path.join(work, "nginx"), exist_ok=True)
    for d in (work, www):
        os.chmod(d, 0o755)  # workers run as nobody when started by root
    with open(os.path.join(www, "img.webp"), "wb") as f:
        f.write(body)
    os.chmod(os.path.join(www, "img.webp"), 0o644)
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    n = os.path.join(work, "nginx")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2; pid {n}/nginx.pid; error_log {n}/error.log; daemon off;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; open_file_cache max=100;
  types {{ image/webp webp; }}
  client_body_temp_path {n}/t1; proxy_temp_path {n}/t2; fastcgi_temp_path {n}/t3;
  uwsgi_temp_path {n}/t4; scgi_temp_path {n}/t5;
  server {{ listen 127.0.0.1:{port}; root {www}; etag on; }} }}
""")
    proc = Proc(["/usr/sbin/nginx", "-c", conf], os.path.join(work, "nginx.log"))
    url = f"http://127.0.0.1:{port}/img.webp"
    wait_http(url, proc)
    return proc, url


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url, secs, conns=64, threads=2, header=None):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", url]
    if header:
        argv[1:1] = ["-H", header]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: float(v) * UNIT[u] for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"),
            "bad": int(bad.group(1)) if bad else 0, "sock": errs.group(1) if errs else ""}


async def one_request(port, path, headers=()):
    """One HTTP/1.1 request on a connection of its own: (status, body, seconds)."""
    t0 = time.perf_counter()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{h}\r\n" for h in headers)
    w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n".encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await r.readexactly(int(m.group(1))) if m else await r.read()
    w.close()
    return status, body, time.perf_counter() - t0


async def burst(port, path, n):
    """N connections, opened together, each asking `path` once."""
    return await asyncio.gather(*(one_request(port, path) for _ in range(n)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def hit_phase(args, lc, nginx_url, base_lc):
    rows = {}

    def rec(name, r):
        rows.setdefault(name, []).append(r)

    plain = lc.base + image_path()
    status, headers, body = get(plain)
    etag = headers.get("etag")
    cases = [("nginx", nginx_url, None), ("layercake", plain, None),
             ("layercake 304", plain, f"If-None-Match: {etag}")]
    if base_lc:
        cases.insert(2, ("baseline", base_lc.base + image_path(), None))
    for name, url, h in cases:  # warm-up, not recorded
        wrk(url, 2, header=h)
    for _ in range(args.rounds):
        for name, url, h in cases:
            rec(name, wrk(url, args.secs, header=h))
    return rows


def print_hits(rows, title):
    ref = statistics.median(r["rps"] for r in rows["nginx"])
    ref99 = statistics.median(r["p99"] for r in rows["nginx"])
    print(f"== hit: {title}")
    print(f"{'':28s} {'req/s med':>10s} {'per round':>20s} {'vs nginx':>8s} {'p99 ms':>7s} {'vs nginx':>8s}  bad")
    for name, rs in rows.items():
        rps = statistics.median(r["rps"] for r in rs)
        p99 = statistics.median(r["p99"] for r in rs)
        per = " / ".join(f"{r['rps']:.0f}" for r in rs)
        bad = sum(r["bad"] for r in rs)
        sock = "; ".join(r["sock"] for r in rs if r["sock"])
        print(f"{name:28s} {rps:10.0f} {per:>20s} {rps / ref:8.2f} {p99:7.2f} {p99 / ref99:8.2f}  {bad}{' ' + sock if sock else ''}")


def timed(url):
    t0 = time.perf_counter()
    status, _, body = get(url)
    dt = (time.perf_counter() - t0) * 1e3
    if status != 200:
        sys.exit(f"{url} answered {status}: {body[:200]!r}")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/layercake")
    ap.add_argument("--baseline", help="an older layercake binary, hit-benched in the same rounds")
    ap.add_argument("--secs", type=int, default=8, help="seconds per wrk round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--misses", type=int, default=8, help="sequential new-size misses")
    ap.add_argument("--restarts", type=int, default=3, help="fresh-process misses")
    ap.add_argument("--stampede", type=int, default=1000, help="connections on one cold URL")
    ap.add_argument("--overload-secs", type=int, default=30)
    ap.add_argument("--skip", default="", help="comma-separated: hit,token,miss,stampede,overload")
    ap.add_argument("--config", default="", help="TOML added to the measured server's configuration")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    for tool in ("wrk", "/usr/sbin/nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install wrk nginx-light")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    work = tempfile.mkdtemp(prefix="lc-hot-")
    procs = []
    try:
        lc = Layercake(args.binary, work, "lc", args.config)
        lc.start()
        procs.append(lc)
        warm = lc.base + image_path()
        timed(warm)
        layers = lc.metric("layercake_renders_total", SUCCESS)  # the image's layers, all rendered once
        status, headers, body = get(warm)
        print(f"# {args.binary}: hit answers {status}, {len(body)} bytes, "
              f"ETag {headers.get('etag')}, Cache-Control {headers.get('cache-control')}, "
              f"Vary {headers.get('vary')}")
        ng, nginx_url = nginx_start(work, body)
        procs.append(ng)
        base_lc = None
        if args.baseline:
            base_lc = Layercake(args.baseline, work, "base", "")
            base_lc.start()
            procs.append(base_lc)
            timed(base_lc.base + image_path())

        if "hit" not in skip:
            print_hits(hit_phase(args, lc, nginx_url, base_lc),
                       f"development mode, wrk -t2 -c64 -d{args.secs}s, {args.rounds} rounds alternating")
        if base_lc:
            base_lc.stop()

        if "miss" not in skip:
            news = [timed(lc.base + image_path(width=600 + i)) for i in range(args.misses)]
            fresh = []
            for i in range(args.restarts):
                lc.stop()
                lc.start()
                fresh.append(timed(lc.base + image_path(width=700 + i)))
            nostack = Layercake(args.binary, work, "nostack",
                                args.config + "\n[cache]\nflattened_bytes = 0\n")
            nostack.start()
            procs.append(nostack)
            timed(nostack.base + image_path())
            stacked = [timed(nostack.base + image_path(width=600 + i)) for i in range(args.misses)]
            nostack.stop()
            print("== miss (ms, one request at a time)")
            for name, xs in [("new size, stack kept", news),
                             ("new size, layers stacked", stacked),
                             ("fresh process, from store", fresh)]:
                print(f"{name + ':':28s} median {statistics.median(xs):7.1f}  min {min(xs):7.1f}  "
                      f"max {max(xs):7.1f}  (n={len(xs)})")

        if "stampede" not in skip:
            # a server of its own, so that every layer of the image is cold
            cold = Layercake(args.binary, work, "cold", args.config)
            cold.start()
            procs.append(cold)
            stampede(args, cold, image_path(), f"a fresh server: all {layers:.0f} layers to render")
            cold.stop()
            stampede(args, lc, image_path(width=333, quality=71),
                     "a new size: the stack kept, renders 0 expected")

        if "overload" not in skip:
            overload(args, lc)

        if "token" not in skip:
            token_phase(args, lc, nginx_url)
    finally:
        for p in procs:
            p.stop()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"# kept {work}")


def stampede(args, lc, path, what):
    n = args.stampede
    renders0 = lc.metric("layercake_renders_total", SUCCESS)
    encodes0 = lc.metric("layercake_encodes_total")
    cpu0 = lc.proc.cpu_secs()
    results = asyncio.run(burst(lc.port, path, n))
    cpu_cold = lc.proc.cpu_secs() - cpu0
    renders = lc.metric("layercake_renders_total", SUCCESS) - renders0
    encodes = lc.metric("layercake_encodes_total") - encodes0
    statuses = {}
    for s, _, _ in results:
        statuses[s] = statuses.get(s, 0) + 1
    digests = {hashlib.blake2b(b, digest_size=8).hexdigest() for s, b, _ in results if s == 200}
    waits = [t * 1e3 for _, _, t in results]
    # the same burst on the warm URL: what n hits cost
    cpu1 = lc.proc.cpu_secs()
    warm = asyncio.run(burst(lc.port, path, n))
    cpu_warm = lc.proc.cpu_secs() - cpu1
    warm_waits = [t * 1e3 for _, _, t in warm]
    print(f"== stampede: {n} connections at once on one cold URL ({what})")
    print(f"answers {statuses}, distinct bodies {len(digests)}, renders {renders:.0f}, encodes {encodes:.0f}")
    print(f"waiters p50 {pct(waits, 50):.1f} ms, p99 {pct(waits, 99):.1f} ms; the same burst warm: p50 {pct(warm_waits, 50):.1f} ms, p99 {pct(warm_waits, 99):.1f} ms")
    print(f"process CPU: cold burst {cpu_cold * 1e3:.0f} ms ({cpu_cold / n * 1e3:.3f} ms/request), "
          f"warm burst {cpu_warm * 1e3:.0f} ms ({cpu_warm / n * 1e3:.3f} ms/request), ratio {cpu_cold / max(cpu_warm, 1e-9):.2f}")


def overload(args, lc):
    hit = lc.base + image_path()
    if lc.proc is None:
        lc.start()
        timed(hit)
    idle = wrk(hit, 10, conns=8, threads=1)
    slots = len(os.sched_getaffinity(0))  # compose.concurrency 0: one per CPU the process may use
    misses = 10 * slots
    stop = time.time() + args.overload_secs
    counts = {}
    lock = threading.Lock()

    def loop(i):
        n = 0
        while time.time() < stop:
            n += 1
            # distinct sizes and qualities: every request a resize of the kept stack and an encode
            path = image_path(width=200 + (i * 997 + n * 31) % 1500, quality=50 + (i + n) % 45)
            s, _, _ = get(lc.base + path, timeout=60)
            with lock:
                counts[s] = counts.get(s, 0) + 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(misses)]
    for t in threads:
        t.start()
    time.sleep(min(3, args.overload_secs / 4))
    loaded = wrk(hit, max(5, args.overload_secs - 8), conns=8, threads=1)
    for t in threads:
        t.join()
    # the default [cache] budgets (--config may change them): composites,
    # layers, stand-ins, configurations, flattened
    budgets = 268435456 + 1073741824 + 33554432 + 16777216 + 134217728
    print(f"== overload: {misses} connections asking distinct misses for {args.overload_secs} s "
          f"(compose.concurrency {slots}), hits on wrk -t1 -c8")
    print(f"misses answered {counts}")
    print(f"hit idle:   {idle['rps']:.0f} req/s, p50 {idle['p50']:.2f} ms, p99 {idle['p99']:.2f} ms")
    print(f"hit loaded: {loaded['rps']:.0f} req/s, p50 {loaded['p50']:.2f} ms, p99 {loaded['p99']:.2f} ms "
          f"({loaded['p99'] / idle['p99']:.1f}x idle p99), bad {loaded['bad']}")
    print(f"peak RSS {lc.proc.peak_rss() / 2**20:.0f} MiB (cache budgets {budgets / 2**20:.0f} MiB)")


def token_phase(args, lc, nginx_url):
    """Restart out of development mode: a private token and a signing key."""
    lc.stop()
    with open(lc.config, "w") as f:
        f.write(f'{args.config}\n[signing]\nkeys = ["{KEY}"]\n')
    token = lc.cli("token", "create", "--name", "bench").split()[-1]
    signed = lc.cli("url", "--asset", SOFA, "--configuration", _json(CFG), "--width", "512",
                    "--format", "webp")
    lc.start()
    # the signed URL names no quality: ask its URL, then the token's with the same
    signed_url = lc.base + signed
    token_url = lc.base + image_path(bearer_token=token)
    for u in (signed_url, token_url):
        s, _, b = get(u)
        if s != 200:
            sys.exit(f"{u} answered {s}: {b[:200]!r}")
    s, _, b = get(lc.base + image_path())
    if s != 401:
        sys.exit(f"without a token the image answered {s}, expected 401")
    rows = {}
    cases = [("nginx", nginx_url), ("layercake private token", token_url), ("layercake signed URL", signed_url)]
    for _, u in cases:
        wrk(u, 2)
    for _ in range(args.rounds):
        for name, u in cases:
            rows.setdefault(name, []).append(wrk(u, args.secs))
    print_hits(rows, f"out of development mode, wrk -t2 -c64 -d{args.secs}s, {args.rounds} rounds alternating")


if __name__ == "__main__":
    main()
