#!/usr/bin/env python3
"""Runs the same workloads against streamd and against nginx + Nchan, back to back on this machine, and
prints one table: metric | streamd | Nchan | ratio (streamd / Nchan) | relative (to another row of the
run) | load CPU % (the busiest load process).

    python3 tests/bench/compare.py                 # full comparison (about 15 minutes)
    python3 tests/bench/compare.py --smoke         # a few seconds, streamd only, no nginx (CTest: bench)
    python3 tests/bench/compare.py --only fanout_latency,idle --runs 1

Servers are pinned to core 0 and the load generator to core 1 for per-core figures (taskset; other cores
with --server-cores / --load-cores; the "both cores" workloads put both on both sets). Server CPU time and
RSS come from /proc. Every load process reports the share of its core it used in its measured window;
a figure whose load process passed --load-bound (90 %) of its core is flagged as load-bound, unless the
workload can split its streams over more processes and the load cores have room for them: then the run
is repeated with more processes. Nginx + libnginx-mod-nchan are installed from Debian with apt-get when
missing (root only), and nginx runs unprivileged (as nobody when this script runs as root) with
`nginx -p DIR -c DIR/nginx.conf` built from tests/bench/nchan.conf on a free loopback port.
Everything talks to 127.0.0.1 only. Only the python3 standard library is used.
"""
import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_BOUND = 0.90  # a load process above this share of its core may be what limits the figure (--load-bound)
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------------------
# /proc sampling

def proc_cpu(pids):
    """utime + stime in seconds, summed over PIDS (every thread of each process)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return total


def proc_rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except OSError:
            pass
    return out


def have_taskset():
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pin(cores, argv):
    """Prefixes ARGV with taskset when CORES is set and the machine has two cores or more."""
    if cores is None or not have_taskset():
        return argv
    return ["taskset", "-c", cores] + argv


def expand_cores(cores):
    """The set of cores a taskset list ("1", "0-1", "0,2-3") names (ValueError when it is not one)."""
    out = set()
    for part in cores.split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def core_count(cores):
    """How many cores a taskset list names; None (unpinned) = every core of the machine."""
    if cores is None or not have_taskset():
        return os.cpu_count() or 1
    return len(expand_cores(cores))


# ------------------------------------------------------------------------------------------------
# servers

class Streamd:
    name = "streamd"
    target = "streamd"

    def __init__(self, binary, workdir, cores, extra_conf=""):
        self.binary, self.workdir, self.cores = binary, workdir, cores
        self.conf = os.path.join(workdir, "streamd.conf")
        with open(self.conf, "w") as f:
            f.write('address = "127.0.0.1";\nport = 0;\nhttp_stream = true;\nsse = true;\nclient_insecure = true;\n'
                    'api_key = "k";\nlog_level = "warn";\n' + extra_conf)
        self.proc = None

    def start(self):
        self.errpath = os.path.join(self.workdir, "streamd.err")
        self.err = open(self.errpath, "w+")
        self.proc = subprocess.Popen(pin(self.cores, [self.binary, "-c", self.conf, "-l", "info"]),
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        end = time.time() + 10
        self.port = None
        while time.time() < end and self.port is None:
            time.sleep(0.05)
            with open(self.errpath) as f:
                for line in f:
                    if "listening on " in line:
                        self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"streamd did not start: {open(self.errpath).read()[-2000:]}")
        self.pids = [self.proc.pid]
        time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence), for the cluster workloads."""

    def __init__(self, workdir, cores):
        self.workdir, self.cores, self.proc = workdir, cores, None

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen(pin(self.cores, ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                                       "--save", "", "--appendonly", "no", "--loglevel", "warning"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("redis-server did not start")

    def info(self, section):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while not data.endswith(b"\r\n\r\n") and b"\r\n" in data[:20] or not data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, _, rest = data.partition(b"\r\n")
                if head.startswith(b"$") and len(rest) >= int(head[1:]):
                    break
        return dict(line.split(":", 1) for line in data.decode(errors="replace").splitlines() if ":" in line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class StreamdCluster:
    """Two streamd nodes on one redis-server (engine = "redis"): subscribers on node A (.port), the
    publisher and the routed emulation POSTs on node B (.port_b). Everything on the server cores."""
    name = "streamd ×2 on Redis"
    target = "streamd"

    def __init__(self, binary, workdir, cores):
        self.redis = RedisServer(workdir, cores)
        self.binary, self.workdir, self.cores = binary, workdir, cores

    def start(self):
        self.redis.start()
        conf = f'engine = "redis";\nredis_address = "127.0.0.1:{self.redis.port}";\n'
        self.a = Streamd(self.binary, tempfile.mkdtemp(dir=self.workdir), self.cores, conf)
        self.b = Streamd(self.binary, tempfile.mkdtemp(dir=self.workdir), self.cores, conf)
        self.a.start()
        self.b.start()
        self.port, self.port_b = self.a.port, self.b.port
        self.pids = self.a.pids + self.b.pids + [self.redis.proc.pid]
        time.sleep(4)  # the nodes' first heartbeats: B must know A before it routes to it

    def commands(self):
        return int(self.redis.info("stats").get("total_commands_processed", "0"))

    def stop(self):
        for x in (getattr(self, "a", None), getattr(self, "b", None), self.redis):
            if x:
                x.stop()


class Nchan:
    name = "Nchan"
    target = "nchan"

    def __init__(self, workdir, cores, workers=1):
        self.workdir, self.cores, self.workers = workdir, cores, workers
        self.proc = None

    def start(self):
        prefix = tempfile.mkdtemp(prefix="nchan.", dir=self.workdir)
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        self.port = free_port()
        with open(os.path.join(HERE, "nchan.conf")) as f:
            conf = f.read().replace("@PORT@", str(self.port)).replace("@WORKERS@", str(self.workers))
        confpath = os.path.join(prefix, "nginx.conf")
        with open(confpath, "w") as f:
            f.write(conf)
        argv = ["nginx", "-p", prefix, "-c", confpath]
        if os.geteuid() == 0:  # run it unprivileged: as nobody, in a directory nobody owns
            pw = pwd.getpwnam("nobody")
            for dirpath, dirnames, filenames in os.walk(prefix):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
                    os.chown(name, pw.pw_uid, pw.pw_gid)
            os.chmod(self.workdir, 0o755)
            argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"] + argv
        self.err = open(os.path.join(prefix, "stderr"), "w+")
        self.proc = subprocess.Popen(pin(self.cores, argv), stdout=subprocess.DEVNULL, stderr=self.err)
        if not wait_port(self.port):
            self.stop()
            self.err.seek(0)
            raise RuntimeError(f"nginx did not start: {self.err.read()[-2000:]}")
        end = time.time() + 5
        self.pids = []
        while time.time() < end and len(self.pids) < self.workers:
            self.pids = children(self.proc.pid)
            time.sleep(0.05)
        if not self.pids:
            raise RuntimeError("no nginx worker process")
        time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def ensure_nchan():
    """Installs nginx + the Nchan module from Debian when missing; prepares the compiled-in temp paths."""
    if not (shutil.which("nginx") and os.path.exists(NCHAN_MODULE)):
        if os.geteuid() != 0:
            raise RuntimeError("nginx and libnginx-mod-nchan are missing: apt-get install nginx libnginx-mod-nchan")
        log("installing nginx + libnginx-mod-nchan with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "nginx", "libnginx-mod-nchan"]
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    # nginx creates its compiled-in temp directories at startup even when the config names others;
    # an unprivileged nginx can only use them when they exist already (the package's postinst makes them).
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        path = os.path.join("/var/lib/nginx", d)
        if not os.path.isdir(path):
            if os.geteuid() != 0:
                raise RuntimeError(f"{path} is missing (create it as root)")
            os.makedirs(path, exist_ok=True)


# ------------------------------------------------------------------------------------------------
# load generator processes

class Loadgen:
    """One loadgen process; .report is its final JSON report once finish() returned."""

    def __init__(self, binary, args, cores):
        self.argv = pin(cores, [binary] + [str(a) for a in args])
        self.report = None
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.ready = threading.Event()
        self.err = []
        self.t_out = threading.Thread(target=self._read_out, daemon=True)
        self.t_out.start()
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_err.start()

    def _read_out(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("event") == "ready":
                self.ready.set()
            else:
                self.lines.append(obj)
        self.ready.set()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line.rstrip())
            if len(self.err) > 200:
                del self.err[:100]

    def wait_ready(self, timeout):
        ok = self.ready.wait(timeout)
        return ok and self.proc.poll() is None

    def finish(self, timeout=120):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.t_out.join(5)
        self.t_err.join(5)
        if not self.lines:
            raise RuntimeError("loadgen produced no report: " + " ".join(self.argv) + "\n" + "\n".join(self.err[-20:]))
        self.report = self.lines[-1]
        return self.report

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish()


def merge_reports(reports):
    """Sums counts of several subscriber processes and recomputes percentiles from their histograms."""
    hist = {}
    for r in reports:
        for v, n in r.get("hist", []):
            hist[v] = hist.get(v, 0) + n
    total = sum(hist.values())

    def pct(p):
        if total == 0:
            return 0
        want, seen = max(1, int(p * total + 0.5)), 0
        for v in sorted(hist):
            seen += hist[v]
            if seen >= want:
                return v
        return max(hist)

    out = {"count": sum(r["count"] for r in reports), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
           "max_us": max((r["max_us"] for r in reports), default=0)}
    for k in ("ready", "conns", "closed_by_server", "conn_errors", "http_errors", "disconnects", "streams_complete",
              "pings", "pongs", "cpu_s", "post_fail", "bad_frames"):
        out[k] = sum(r.get(k, 0) for r in reports)
    out["processes"] = len(reports)
    out["min_per_stream"] = min((r.get("min_per_stream", 0) for r in reports), default=0)
    first = [r for r in reports if r["seconds"] > 0]
    out["seconds"] = max((r["seconds"] for r in first), default=0)
    out["rate"] = sum(r["rate"] for r in reports)
    firsts = [r["first_ts_ns"] for r in reports if r.get("first_ts_ns")]
    if firsts:  # subscribers: CLOCK_MONOTONIC is one clock for every process of the machine
        e2e = (max(r.get("last_delivery_ns", 0) for r in reports) - min(firsts)) / 1e9
        out["e2e_seconds"], out["e2e_rate"] = e2e, (out["count"] / e2e if e2e > 0 else 0)
    return out


class PerfCount:
    """Counts the server's write-side syscalls with perf tracepoints, when perf can."""
    EVENTS = ["syscalls:sys_enter_sendto", "syscalls:sys_enter_write", "syscalls:sys_enter_writev",
              "syscalls:sys_enter_sendmsg"]

    def __init__(self, pids, workdir, enabled):
        self.proc = None
        if not enabled or not shutil.which("perf"):
            return
        self.out = os.path.join(workdir, f"perf.{time.time_ns()}.csv")
        argv = ["perf", "stat", "-x", ",", "-o", self.out, "-e", ",".join(self.EVENTS), "-p",
                ",".join(str(p) for p in pids)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        total, seen = 0, False
        try:
            with open(self.out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) > 2 and parts[0].isdigit():
                        total += int(parts[0])
                        seen = True
        except OSError:
            return None
        return total if seen else None


class PerfRecord:
    """perf record -g of the server over a measured window (--profile DIR), streamd only."""

    def __init__(self, pids, path):
        self.proc = None
        if not path or not shutil.which("perf"):
            return
        argv = ["perf", "record", "-F", "1999", "-g", "-o", path, "-p", ",".join(str(p) for p in pids)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------------------------------------
# workloads

class Resplit(Exception):
    """A load process was load-bound and the load cores have room for more: run the workload again."""


class Bench:
    def __init__(self, args, workdir):
        self.a = args
        self.workdir = workdir
        self.smoke = args.smoke
        self.server_cores = None if args.no_pin else args.server_cores
        self.load_cores = None if args.no_pin else args.load_cores
        self.failures = []
        self.workload = ""
        self.procs = []  # the load processes of the current run
        self.split = {}  # workload => load processes, raised after a load-bound run
        self.warnings = []  # load-bound figures

    def profile(self, server):
        """Starts perf record on streamd for the measured window when --profile DIR was given."""
        if not self.a.profile or server.target != "streamd":
            return PerfRecord([], None)
        os.makedirs(self.a.profile, exist_ok=True)
        return PerfRecord(server.pids, os.path.join(self.a.profile, f"{self.workload}.perf.data"))

    def loadgen(self, args, cores="load"):
        p = Loadgen(self.a.loadgen, args, self.load_cores if cores == "load" else cores)
        self.procs.append(p)
        return p

    def split_count(self, n, per_proc):
        """Load processes for N streams: ceil(N / PER_PROC), or more when a load-bound run asked for more."""
        return max(-(-n // per_proc), self.split.get(self.workload, 1))

    def resplit(self, reports, load_cores="load"):
        """After a run whose streams were split over len(REPORTS) processes: raises Resplit when one of them
        passed --load-bound of its core and the load cores have room for more processes (one per core)."""
        top = max((r.get("cpu_share", 0) for r in reports), default=0)
        room = core_count(self.load_cores if load_cores == "load" else load_cores)
        if top >= self.a.load_bound and len(reports) < room:
            self.split[self.workload] = min(2 * len(reports), room)
            raise Resplit(f"a load process used {top:.0%} of its core; "
                          f"again with {self.split[self.workload]} processes")

    def base(self, server, extra=()):
        return ["--port", server.port, "--target", server.target] + list(extra)

    def check(self, cond, what):
        if not cond:
            self.failures.append(what)
            log("CHECK FAILED: " + what)

    def subscribers(self, server, n, channels, per_proc, count, extra=(), load_cores="load"):
        procs, off = [], 0
        per_proc = -(-n // self.split_count(n, per_proc))
        while off < n:
            k = min(per_proc, n - off)
            args = self.base(server, ["--conns", k, "--channels", channels, "--channel-offset", off, "--count", count,
                                      "--duration", self.a.max_seconds, "--quiet", 5, "--posters", 32,
                                      "--src-base", 1 + len(procs)] + list(extra))
            procs.append(self.loadgen(["subscribe"] + args, load_cores))
            off += k
        for p in procs:
            if not p.wait_ready(120):
                for q in procs:
                    q.stop()
                raise RuntimeError("subscribers did not become ready:\n" + "\n".join(p.err[-10:]))
        return procs

    def fanout(self, server, n, channels, pubs, rate, pub_conns=1, per_proc=None, extra_sub=(), perf=False,
               load_cores="load", pub_port=None):
        """N subscribers over CHANNELS channels; PUBS publications at RATE/s (0 = back to back)."""
        per_proc = per_proc or n
        rss0 = proc_rss_kb(server.pids)
        # the publisher goes round the channels, so each stream should get PUBS / CHANNELS publications
        subs = self.subscribers(server, n, channels, per_proc, max(1, pubs // channels), extra_sub, load_cores)
        rss1 = proc_rss_kb(server.pids)
        cpu0 = proc_cpu(server.pids)
        counter = PerfCount(server.pids, self.workdir, perf and not self.a.no_perf)
        prof = self.profile(server)
        t0 = time.time()
        pub_args = self.base(server, ["--conns", pub_conns, "--count", pubs, "--rate", rate, "--channels", channels,
                                      "--duration", self.a.max_seconds])
        if pub_port:
            pub_args[1] = pub_port  # publish through another node
        pub = self.loadgen(["publish"] + pub_args, load_cores)
        prep = pub.finish(timeout=self.a.max_seconds + 30)
        reports = [s.finish(timeout=self.a.max_seconds + 30) for s in subs]
        syscalls = counter.stop()
        prof.stop()
        self.resplit(reports, load_cores)
        cpu = proc_cpu(server.pids) - cpu0
        wall = time.time() - t0
        m = merge_reports(reports)
        expected = n * max(1, pubs // channels)
        m.update(expected=expected, published=prep["count"], publish_failed=prep.get("publish_failed", 0),
                 server_cpu_s=cpu, wall_s=wall, rss_per_stream_kb=(rss1 - rss0) / n, publish_rate=prep["rate"],
                 deliveries_per_cpu_s=m["count"] / cpu if cpu > 0 else 0,
                 syscalls_per_delivery=(syscalls / m["count"]) if syscalls and m["count"] else None)
        self.check(m["count"] == expected, f"{server.name}: {m['count']} of {expected} deliveries")
        return m

    # -- the workloads. Each returns a dict of metrics for one server.

    def w_fanout_latency(self, server):
        if self.smoke:
            return self.fanout(server, 50, 1, 10, 20)
        return self.fanout(server, 10000, 1, 50, 5)

    def w_fanout_throughput(self, server, extra_sub=()):
        if self.smoke:
            return self.fanout(server, 50, 1, 20, 0, perf=False, extra_sub=extra_sub)
        return self.fanout(server, 10000, 1, 60, 0, perf=True, extra_sub=extra_sub)

    def w_fanout_websocket(self, server):
        return self.w_fanout_throughput(server, ["--transport", "websocket"])

    def w_fanout_sse(self, server):
        return self.w_fanout_throughput(server, ["--transport", "sse"])

    def w_channels_100x100(self, server):
        if self.smoke:
            return self.fanout(server, 100, 10, 100, 0, pub_conns=2)
        return self.fanout(server, 10000, 100, 3000, 0, pub_conns=4, perf=True)

    def w_idle(self, server):
        n, hold = (50, 2) if self.smoke else (10000, self.a.idle_seconds)
        rss0 = proc_rss_kb(server.pids)
        sub = self.loadgen(["subscribe"] + self.base(server, ["--conns", n, "--hold", hold + 5, "--quiet", 0,
                                                             "--posters", 16, "--duration", hold + 120]))
        if not sub.wait_ready(120):
            sub.stop()
            raise RuntimeError("idle streams did not become ready")
        time.sleep(1)
        rss1 = proc_rss_kb(server.pids)
        prof = self.profile(server)
        cpu0, t0 = proc_cpu(server.pids), time.time()
        time.sleep(hold)
        cpu, wall = proc_cpu(server.pids) - cpu0, time.time() - t0
        prof.stop()
        rss2 = proc_rss_kb(server.pids)
        r = sub.stop()
        self.check(r["ready"] == n and r["closed_by_server"] == 0,
                   f"{server.name}: idle streams ready {r['ready']}/{n}, closed by server {r['closed_by_server']}")
        return {"streams": r["ready"], "rss_per_stream_kb": (rss1 - rss0) / n, "rss_end_per_stream_kb": (rss2 - rss0) / n,
                "cpu_percent": 100.0 * cpu / wall, "pings": r["pings"], "pongs": r["pongs"],
                "closed_by_server": r["closed_by_server"], "connect_seconds": r.get("ready_seconds", 0),
                "connect_rate": n / r["ready_seconds"] if r.get("ready_seconds", 0) > 0 else 0}

    def w_connect_rate(self, server):
        count, conns = (200, 8) if self.smoke else (20000, 64)
        prof = self.profile(server)
        cpu0 = proc_cpu(server.pids)
        r = self.loadgen(["connect"] + self.base(server, ["--conns", conns, "--count", count, "--src-addrs", 8,
                                                         "--src-base", 10, "--duration", 30])).finish(timeout=90)
        cpu = proc_cpu(server.pids) - cpu0
        prof.stop()
        self.check(r["count"] > 0, f"{server.name}: no session connected")
        return {"rate": r["rate"], "p99_us": r["p99_us"], "count": r["count"], "failed": r.get("connect_failed", 0),
                "sessions_per_cpu_s": r["count"] / cpu if cpu > 0 else 0}

    def emulate(self, server, n, posters, hold, post_port=None):
        """N streams driven by POSTERS keep-alive emulation connections for HOLD seconds, split over
        processes like subscribers (each process its share of both); the rates add up."""
        procs = self.split_count(n, n)
        loads = []
        for i in range(procs):
            k, pk = n // procs + (i < n % procs), max(1, posters // procs + (i < posters % procs))
            extra = ["--post-port", post_port] if post_port else []
            loads.append(self.loadgen(["emulate"] + self.base(server, ["--conns", k, "--posters", pk, "--hold", hold,
                                                                      "--duration", hold + 60, "--src-base", 1 + i]
                                                              + extra)))
        reports = [p.finish(timeout=hold + 90) for p in loads]
        self.resplit(reports)
        return merge_reports(reports)

    def w_emulation(self, server, shape=((10, 4, 2), (100, 64, 10))):
        if server.target != "streamd":
            return None
        n, posters, hold = shape[0] if self.smoke else shape[1]
        prof = self.profile(server)
        cpu0 = proc_cpu(server.pids)
        r = self.emulate(server, n, posters, hold)
        cpu = proc_cpu(server.pids) - cpu0
        prof.stop()
        self.check(r["count"] > 0, f"{server.name}: no emulation reply")
        return {"rate": r["rate"], "p99_us": r["p99_us"], "count": r["count"], "post_fail": r["post_fail"],
                "commands_per_cpu_s": r["count"] / cpu if cpu > 0 else 0, "processes": r["processes"]}

    def w_emulation_1k(self, server):
        """Issue 12's shape: 1,000 streams, 50 keep-alive POST connections."""
        return self.w_emulation(server, ((20, 5, 2), (1000, 50, 10)))

    def w_cluster_fanout(self, server):
        """Subscribers on node A, publications through node B's API: delivery crosses Redis."""
        c0 = server.commands()
        m = (self.fanout(server, 50, 1, 20, 0, pub_port=server.port_b) if self.smoke else
             self.fanout(server, 10000, 1, 60, 0, pub_port=server.port_b))
        m["redis_commands_per_publication"] = (server.commands() - c0) / m["published"] if m["published"] else None
        return m

    def w_cluster_emulation_local(self, server):
        """The same on the Redis engine without routing: streams on node A, their POSTs to A too."""
        return self.w_cluster_emulation(server, routed=False)

    def w_cluster_emulation(self, server, routed=True):
        """Streams on node A, their emulation POSTs to node B, which routes them to A through Redis."""
        n, posters, hold = (10, 4, 2) if self.smoke else (100, 64, 10)
        cpu0 = proc_cpu(server.pids)
        r = self.emulate(server, n, posters, hold, post_port=server.port_b if routed else server.port)
        cpu = proc_cpu(server.pids) - cpu0
        self.check(r["count"] > 0, f"{server.name}: no routed emulation reply")
        return {"rate": r["rate"], "p99_us": r["p99_us"], "count": r["count"], "post_fail": r["post_fail"],
                "commands_per_cpu_s": r["count"] / cpu if cpu > 0 else 0}

    def w_streams_19k(self, server):
        if self.smoke:
            return self.fanout(server, 60, 1, 3, 10, per_proc=30)
        m = self.fanout(server, 19000, 1, 10, 2, per_proc=9500)
        m["streams"] = m["ready"]
        return m

    def w_protobuf(self, server):
        if server.target != "streamd":
            return None
        if self.smoke:
            return self.fanout(server, 50, 1, 10, 0, extra_sub=["--protobuf"])
        return self.fanout(server, 10000, 1, 60, 0, extra_sub=["--protobuf"])


# How each workload runs: (Bench method without "w_", the server's cores, the load's cores, Nchan's
# worker processes). Cores: "server" and "load" are --server-cores and --load-cores, "all" is both sets
# (server and load share them), None is unpinned. The order is the order of the run.
WORKLOADS = {
    "fanout_latency": ("fanout_latency", "server", "load", 1),
    "fanout_latency_2cores": ("fanout_latency", None, None, 2),
    "fanout_throughput": ("fanout_throughput", "server", "load", 1),
    "fanout_websocket": ("fanout_websocket", "server", "load", 1),
    "fanout_sse": ("fanout_sse", "server", "load", 1),
    "fanout_throughput_2cores": ("fanout_throughput", "all", "all", 2),
    "protobuf_throughput": ("protobuf", "server", "load", 1),
    "channels_100x100": ("channels_100x100", "server", "load", 1),
    "idle": ("idle", "server", "load", 1),
    "connect_rate": ("connect_rate", "server", "load", 1),
    "emulation": ("emulation", "server", "load", 1),
    "emulation_1k": ("emulation_1k", "server", "load", 1),
    "streams_19k": ("streams_19k", "server", "load", 1),
    "cluster_fanout": ("cluster_fanout", "server", "load", 1),
    "cluster_emulation_local": ("cluster_emulation_local", "server", "load", 1),
    "cluster_emulation": ("cluster_emulation", "server", "load", 1),
}
CLUSTER = {"cluster_fanout", "cluster_emulation_local", "cluster_emulation"}  # streamd only, two nodes on a redis-server
REPEATED = {"fanout_latency", "fanout_throughput", "fanout_websocket", "fanout_sse", "fanout_throughput_2cores",
            "channels_100x100"}
NOT_IN_SMOKE = {"fanout_latency_2cores"}

# The table: (workload, key, label, format, relative). RELATIVE = (workload, name): the row is also divided
# by that workload's figure of the same run, streamd by streamd and Nchan by Nchan ("0.95 of http_stream").
TB = ("fanout_throughput", "http_stream")
ROWS = [
    ("fanout_latency", "p50_us", "fan-out 1×10k, 5 pub/s, server 1 core: latency p50 (ms)", "ms", None),
    ("fanout_latency", "p99_us", "fan-out 1×10k, 5 pub/s, server 1 core: latency p99 (ms)", "ms", None),
    ("fanout_latency", "max_us", "fan-out 1×10k, 5 pub/s, server 1 core: latency max (ms)", "ms", None),
    ("fanout_latency", "deliveries_per_cpu_s", "fan-out 1×10k, 5 pub/s: deliveries per server CPU-second", "int",
     None),
    ("fanout_latency_2cores", "p99_us", "fan-out 1×10k, 5 pub/s, both cores: latency p99 (ms)", "ms", None),
    ("fanout_throughput", "rate", "fan-out 1×10k, back to back, server 1 core: deliveries/s", "int", None),
    ("fanout_throughput", "e2e_rate", "fan-out 1×10k, back to back: deliveries/s, first publication to last delivery",
     "int", None),
    ("fanout_throughput", "p99_us", "fan-out 1×10k, back to back: latency p99 (ms)", "ms", None),
    ("fanout_throughput", "deliveries_per_cpu_s", "fan-out 1×10k, back to back: deliveries per server CPU-second",
     "int", None),
    ("fanout_throughput", "syscalls_per_delivery", "fan-out 1×10k, back to back: server write syscalls per delivery",
     "f3", None),
    ("fanout_websocket", "rate", "fan-out 1×10k back to back, 1 core, WebSocket: deliveries/s", "int", TB),
    ("fanout_websocket", "e2e_rate", "fan-out 1×10k back to back, WebSocket: deliveries/s, first publication to last "
     "delivery", "int", TB),
    ("fanout_websocket", "p99_us", "fan-out 1×10k back to back, WebSocket: latency p99 (ms)", "ms", TB),
    ("fanout_sse", "rate", "fan-out 1×10k back to back, 1 core, SSE: deliveries/s", "int", TB),
    ("fanout_sse", "e2e_rate", "fan-out 1×10k back to back, SSE: deliveries/s, first publication to last delivery",
     "int", TB),
    ("fanout_sse", "p99_us", "fan-out 1×10k back to back, SSE: latency p99 (ms)", "ms", TB),
    ("fanout_throughput_2cores", "rate", "fan-out 1×10k, back to back, both cores (server and load): deliveries/s",
     "int", ("fanout_throughput", "1 core")),
    ("fanout_throughput_2cores", "e2e_rate", "fan-out 1×10k, back to back, both cores: deliveries/s, first "
     "publication to last delivery", "int", ("fanout_throughput", "1 core")),
    ("fanout_throughput_2cores", "p99_us", "fan-out 1×10k, back to back, both cores: latency p99 (ms)", "ms",
     ("fanout_throughput", "1 core")),
    ("protobuf_throughput", "rate", "fan-out 1×10k protobuf, back to back, 1 core: deliveries/s", "int", None),
    ("channels_100x100", "rate", "100 channels × 100 subscribers, back to back, 1 core: deliveries/s", "int", None),
    ("channels_100x100", "p99_us", "100 channels × 100 subscribers: latency p99 (ms)", "ms", None),
    ("channels_100x100", "publish_rate", "100 channels × 100 subscribers: publications/s accepted", "int", None),
    ("idle", "rss_per_stream_kb", "idle 10k streams: RSS per stream (KB)", "f1", None),
    ("idle", "cpu_percent", "idle 10k streams, 25 s pings: server CPU (% of one core)", "f2", None),
    ("idle", "connect_rate", "opening 10k streams (connect+subscribe, 256 in flight): streams/s", "int", None),
    ("connect_rate", "rate", "new sessions/s (connect + connect reply, then close; 64 in flight)", "int", None),
    ("connect_rate", "p99_us", "new session latency p99 (ms)", "ms", None),
    ("emulation", "rate", "emulation commands/s (keep-alive POST, reply on the stream)", "int", None),
    ("emulation", "p99_us", "emulation command → reply latency p99 (ms)", "ms", None),
    ("emulation_1k", "rate", "emulation commands/s, 50 keep-alive conns, 1k streams", "int", None),
    ("emulation_1k", "p99_us", "emulation, 50 keep-alive conns, 1k streams: command → reply latency p99 (ms)", "ms",
     None),
    ("streams_19k", "ready", "19k streams held (2 load processes)", "int", None),
    ("streams_19k", "streams_complete", "19k streams: streams that got all 10 broadcasts", "int", None),
    ("streams_19k", "rss_per_stream_kb", "19k streams: RSS per stream (KB)", "f1", None),
    ("streams_19k", "p99_us", "19k streams, 2 pub/s: latency p99 (ms)", "ms", None),
    ("cluster_fanout", "rate", "cross-node fan-out 1×10k (subs on A, publish via B), back to back: deliveries/s",
     "int", ("fanout_throughput", "1 node")),
    ("cluster_fanout", "p99_us", "cross-node fan-out 1×10k, back to back: latency p99 (ms)", "ms",
     ("fanout_throughput", "1 node")),
    ("cluster_fanout", "redis_commands_per_publication", "cross-node fan-out: Redis commands per publication", "f2",
     None),
    ("cluster_emulation_local", "rate", "emulation commands/s on the Redis engine, POSTs to the stream's node", "int",
     ("emulation", "1 node")),
    ("cluster_emulation", "rate", "routed emulation commands/s (stream on A, POSTs to B)", "int",
     ("emulation", "1 node")),
    ("cluster_emulation", "p99_us", "routed emulation command → reply latency p99 (ms)", "ms",
     ("emulation", "1 node")),
]
MAX_OVER_RUNS = {"load_cpu_max"}  # kept as the highest over the runs, not the median


def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "ms":
        return f"{v / 1000:.1f}"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "f1":
        return f"{v:.1f}"
    if kind == "f2":
        return f"{v:.2f}"
    return f"{v:.3f}"


def median_metrics(runs):
    """Per-key median over several runs of one workload (None runs dropped); the load processes of every
    run are kept in "load_runs"."""
    runs = [r for r in runs if r]
    if not runs:
        return None
    out = dict(runs[0])
    for k, v in runs[0].items():
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and r.get(k) is not None]
        if vals and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = max(vals) if k in MAX_OVER_RUNS else statistics.median(vals)
    out["runs"] = len(runs)
    out["load_runs"] = [r.get("load", []) for r in runs]
    out.pop("load", None)
    return out


def cores_union(a, b):
    """One taskset list of the cores in A and B (None when either is unpinned)."""
    if a is None or b is None:
        return None
    return ",".join(str(c) for c in sorted(expand_cores(a) | expand_cores(b)))


def load_summary(bench, w, server_name, run):
    """The load processes of the run just finished: their CPU, and a warning for each one above --load-bound."""
    load = []
    for p in bench.procs:
        r = p.report
        if not r:
            continue
        load.append({"mode": r["mode"], "transport": r.get("transport"), "pid": r["pid"], "cpu_s": r["cpu_s"],
                     "cpu_share": r.get("cpu_share", 0), "window_s": r.get("cpu_window_s", 0)})
        if r.get("cpu_share", 0) >= bench.a.load_bound:
            bench.warnings.append(f"{w} on {server_name} (run {run}): the {r['mode']} process {r['pid']} used "
                                  f"{r['cpu_share']:.0%} of its core over {r.get('cpu_window_s', 0):.1f} s: "
                                  f"the figure may be bound by the load generator")
            log("  WARNING: " + bench.warnings[-1])
    if load:
        log("  load CPU: " + ", ".join(f"{x['mode']} {x['cpu_share']:.0%}" for x in load))
    return load


def run_one(bench, args, workdir, w, sname, run):
    """One run of workload W on SNAME ("streamd" or "nchan"), again with more load processes when the
    workload raises Resplit. Returns its metrics (None when it failed or does not apply)."""
    method, server_cores, load_cores, workers = WORKLOADS[w]
    cores = {"server": bench.server_cores, "load": bench.load_cores, None: None,
             "all": cores_union(bench.server_cores, bench.load_cores)}
    while True:
        if w in CLUSTER:
            server = StreamdCluster(args.streamd, workdir, cores[server_cores])
        elif sname == "streamd":
            server = Streamd(args.streamd, workdir, cores[server_cores])
        else:
            server = Nchan(workdir, cores[server_cores], workers=workers)
        bench.workload, bench.procs = w, []
        saved, bench.load_cores = bench.load_cores, cores[load_cores]
        server.start()
        try:
            log(f"{w} on {server.name} (run {run}, port {server.port})")
            m = getattr(bench, "w_" + method)(server)
        except Resplit as e:
            log(f"  {w} on {server.name}: {e}")
            continue
        except Exception as e:  # one failed workload must not hide the others
            log(f"{w} on {server.name} failed: {e}")
            bench.failures.append(f"{w} on {server.name}: {e}")
            m = None
        finally:
            bench.load_cores = saved
            server.stop()
        if m is not None:
            log("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in m.items() if k != "hist"))
            m["load"] = load_summary(bench, w, server.name, run)
            m["load_cpu_max"] = max((x["cpu_share"] for x in m["load"]), default=None)
        return m


def table_rows(results, skip_nchan, load_bound):
    """The printed table, one dict per row (also written to --json)."""
    rows = []

    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    for w, key, label, kind, rel in ROWS:
        if w not in results:
            continue
        res = {s: results[w].get(s) or {} for s in ("streamd", "nchan")}
        s, n = res["streamd"].get(key), res["nchan"].get(key)
        ratio = f"{s / n:.2f}" if num(s) and num(n) and n else "n/a"
        relative = ""
        if rel and rel[0] in results:
            base = {x: (results[rel[0]].get(x) or {}).get(key) for x in ("streamd", "nchan")}
            if num(s) and num(base["streamd"]) and base["streamd"]:
                relative = f"{s / base['streamd']:.2f} of {rel[1]}"
                if num(n) and num(base["nchan"]) and base["nchan"]:
                    relative += f" (Nchan {n / base['nchan']:.2f})"
        load = {x: res[x].get("load_cpu_max") for x in ("streamd", "nchan")}
        cpu = "/".join(f"{100 * load[x]:.0f}{'*' if load[x] >= load_bound else ''}"
                       for x in ("streamd", "nchan") if num(load[x]))
        rows.append({"metric": label, "streamd": fmt(s, kind), "nchan": "n/a" if skip_nchan else fmt(n, kind),
                     "ratio": "n/a" if skip_nchan else ratio, "relative": relative, "load_cpu": cpu or "n/a",
                     "load_cpu_share": load})
    return rows


def print_table(rows):
    cols = [("metric", "metric"), ("streamd", "streamd"), ("nchan", "Nchan"), ("ratio", "ratio"),
            ("relative", "relative"), ("load_cpu", "load CPU %")]
    widths = [max(len(str(r[k])) for r in rows + [dict((k, h) for k, h in cols)]) for k, _ in cols]
    print("| " + " | ".join(h.ljust(widths[i]) for i, (_, h) in enumerate(cols)) + " |")
    print("| " + " | ".join("-" * widths[i] for i in range(len(cols))) + " |")
    for r in rows:
        print("| " + " | ".join(str(r[k]).ljust(widths[i]) if i == 0 else str(r[k]).rjust(widths[i])
                                for i, (k, _) in enumerate(cols)) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny N, seconds, streamd only, no nginx")
    ap.add_argument("--streamd", default=os.path.join(ROOT, "build", "server", "streamd"))
    ap.add_argument("--loadgen", default=None, help="loadgen binary (default: build/tests/bench/loadgen, or cc it)")
    ap.add_argument("--skip-nchan", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated workloads: " + ",".join(WORKLOADS))
    ap.add_argument("--runs", type=int, default=3, help="runs of the fan-out workloads (median; default 3)")
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--max-seconds", type=float, default=90, help="time limit of one load process")
    ap.add_argument("--server-cores", default="0", help="taskset list of the server's cores (default 0)")
    ap.add_argument("--load-cores", default="1", help="taskset list of the load generator's cores (default 1)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and load to cores")
    ap.add_argument("--load-bound", type=float, default=LOAD_BOUND,
                    help=f"share of its core above which a load process is load-bound (default {LOAD_BOUND})")
    ap.add_argument("--no-perf", action="store_true", help="do not count server syscalls with perf")
    ap.add_argument("--json", default=None, help="also write every measurement to this file")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="perf record streamd during each measured window into DIR/WORKLOAD.perf.data")
    args = ap.parse_args()
    if args.smoke:
        args.skip_nchan, args.runs, args.no_perf, args.max_seconds = True, 1, True, 30
    for c in (args.server_cores, args.load_cores):
        try:
            expand_cores(c)
        except ValueError:
            sys.exit(f"bad core list {c!r} (want e.g. 0, 1-3 or 0,2)")

    workdir = tempfile.mkdtemp(prefix="streamd-bench.")
    try:
        if args.loadgen is None:
            cand = os.path.join(ROOT, "build", "tests", "bench", "loadgen")
            if os.path.exists(cand):
                args.loadgen = cand
            else:
                args.loadgen = os.path.join(workdir, "loadgen")
                subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-o", args.loadgen,
                                os.path.join(HERE, "loadgen.c")], check=True)
        if not os.access(args.streamd, os.X_OK):
            sys.exit(f"no streamd binary at {args.streamd} (build it, or pass --streamd)")
        only = [w for w in args.only.split(",") if w] or list(WORKLOADS)
        for w in only:
            if w not in WORKLOADS:
                sys.exit(f"unknown workload {w}")
        if args.smoke:
            only = [w for w in only if w not in NOT_IN_SMOKE]
        if not shutil.which("redis-server"):
            only = [w for w in only if w not in CLUSTER]
        bench = Bench(args, workdir)
        if not args.skip_nchan:
            ensure_nchan()

        results = {}
        t_start = time.time()
        for w in only:
            results[w] = {}
            servers = ["streamd"] + ([] if args.skip_nchan or w in CLUSTER else ["nchan"])
            for sname in servers:
                runs = args.runs if w in REPEATED else 1
                results[w][sname] = median_metrics([run_one(bench, args, workdir, w, sname, f"{i + 1}/{runs}")
                                                    for i in range(runs)])
        elapsed = time.time() - t_start

        rows = table_rows(results, args.skip_nchan, args.load_bound)
        if args.smoke:
            print("SMOKE RUN: tiny N, streamd only; the labels describe the full run, the figures mean nothing\n")
        print_table(rows)
        print(f"\n(ratio = streamd / Nchan; relative = the row over the named row of this run, streamd over "
              f"streamd and Nchan over Nchan; load CPU % = the busiest load process's share of its core in the "
              f"measured window, streamd's run / Nchan's, * above {args.load_bound:.0%}; {args.runs} run(s) of the "
              f"fan-out workloads, median; total {elapsed:.0f} s)")
        if bench.warnings:
            print(f"\nload-bound figures (a load process above {args.load_bound:.0%} of its core, no more cores "
                  "to split it over):\n  " + "\n  ".join(bench.warnings))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"results": results, "rows": rows, "warnings": bench.warnings,
                           "failures": bench.failures, "seconds": elapsed}, f, indent=1)
        if bench.failures:
            print("\nchecks that failed:\n  " + "\n  ".join(bench.failures))
            sys.exit(1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
