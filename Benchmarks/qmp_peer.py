#!/usr/bin/env python3
"""The Python contenders of Benchmarks/run-supervision.sh: a raw-socket QMP client (the
floor) and QEMU's own `qemu.qmp` (asyncio QMPClient).

    qmp_peer.py rtt   --client raw|raw-noid|qemuqmp --socket PATH [--n 2000] [--window 64] [--reps 2] [--warmup 200]
    qmp_peer.py spawn --client raw|qemuqmp --qemu BIN --dir DIR [--runs 6] [--warmup 1] [--poll-ms 2] [--transport socket|socketpair]
    qmp_peer.py spawn-call [--program /bin/true] [--runs 50]
    qmp_peer.py scale --client raw|qemuqmp --qemu BIN --dir DIR [--count 32] [--poll-ms 2] [--transport socket|socketpair]

Each prints one JSON object per measurement on stdout, like launch-bench does for
the Swift client. Same QEMU argv, same readiness strategy (stat the socket every
--poll-ms, then connect, retry on ECONNREFUSED/ENOENT), same commands. With
`--transport socketpair` QEMU gets one end of a socketpair as fd 0
(`-chardev socket,id=qmp,fd=0 -mon chardev=qmp,mode=control`): no socket file, no
polling, no accept() in QEMU.

A start whose QMP handshake gets no answer within 5 s is reported as `"hung": 1`
(QEMU 7.2's listener race) and not timed.

The raw client sends exactly the bytes QMP.Client sends
(`{"execute":"query-status","id":N}` + LF): QEMU's monitor reads its input one
byte per main-loop pass, so the length of the line is part of the round trip.
`raw-noid` sends `{"execute":"query-status"}` + LF instead, to show that cost.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

now = time.perf_counter


def usage():
    """(CPU seconds, context switches) of this process so far."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw + ru.ru_nivcsw


class Meter:
    """Wall time, CPU time and context switches of a block, per command."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.cpu, self.csw = usage()
        self.t0 = now()
        return self

    def __exit__(self, *exc):
        self.seconds = now() - self.t0
        cpu, csw = usage()
        self.fields = dict(seconds=self.seconds, us_per_cmd=self.seconds / self.n * 1e6,
                           cpu_us_per_cmd=(cpu - self.cpu) / self.n * 1e6, csw_per_cmd=(csw - self.csw) / self.n)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def environment():
    # What Machine gives QEMU (childEnvironment() in Machine.swift).
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}
    for key in ("HOME", "TMPDIR", "XDG_RUNTIME_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def qemu_argv(qemu, sock):
    common = [qemu, "-M", "none", "-S", "-nodefaults", "-display", "none"]
    if sock is None:  # socketpair: QEMU's end is its fd 0
        return common + ["-chardev", "socket,id=qmp,fd=0", "-mon", "chardev=qmp,mode=control"]
    return common + ["-qmp", "unix:%s,server=on,wait=off" % sock.replace(",", ",,")]


class Hung(Exception):
    """QEMU accepted the connection but never answered (QEMU 7.2's listener race:
    its main thread blocks in accept4(); see RESULTS-supervision.md)."""


TIMEOUT = 5.0


def spawn_qemu(qemu, sock, transport="socket"):
    """Returns (Popen, our end of the socketpair or None)."""
    # The floor: no output capture (ChildProcess pipes stdout/stderr to a reader thread).
    kwargs = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(),
                  start_new_session=True)
    if transport == "socketpair":
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(qemu_argv(qemu, None), stdin=theirs, **kwargs)
        finally:
            theirs.close()
        return proc, ours
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    return subprocess.Popen(qemu_argv(qemu, sock), stdin=subprocess.DEVNULL, **kwargs), None


def kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---------------------------------------------------------------- raw client

class Raw:
    """Plain blocking socket: greeting, qmp_capabilities, then lines."""

    def __init__(self, path, with_id=True, connected=None):
        if connected is not None:
            self.sock = connected
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
            except OSError:
                self.sock.close()
                raise
        self.buf = b""
        self.next_id = 1
        self.with_id = with_id
        self.sock.settimeout(TIMEOUT)
        try:
            greeting = self.readline()
            if b'"QMP"' not in greeting:
                raise RuntimeError("no greeting: %r" % greeting)
            self.sock.sendall(self.line("qmp_capabilities"))
            reply = self.readline()
            # QEMU 7.2 can send its greeting twice on one connection (seen here once while
            # many QEMUs started: the same listener race as the hang in the notes); like
            # QMP.Client, skip a repeated greeting and read on.
            while b'"QMP"' in reply and b'"return"' not in reply:
                reply = self.readline()
        except (socket.timeout, TimeoutError):
            self.sock.close()
            raise Hung("no greeting or no reply to qmp_capabilities within %g s" % TIMEOUT)
        if b'"return"' not in reply:
            raise RuntimeError("qmp_capabilities: %r" % reply)
        self.sock.settimeout(None)  # blocking: the fastest recv (the driver bounds the whole run)

    def line(self, command):
        if not self.with_id:
            return b'{"execute":"%s"}\n' % command.encode()
        ident = self.next_id
        self.next_id += 1
        return b'{"execute":"%s","id":%d}\n' % (command.encode(), ident)

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = self.buf[:i]
                self.buf = self.buf[i + 1:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QEMU closed the connection")
            self.buf += chunk

    def reply(self):
        while True:
            line = self.readline()
            if b'"return"' in line:
                return line
            if b'"error"' in line:
                raise RuntimeError(line)
            # an event: skip

    def execute(self, command):
        self.sock.sendall(self.line(command))
        return self.reply()

    def batch(self, command, count):
        self.sock.sendall(b"".join(self.line(command) for _ in range(count)))
        for _ in range(count):
            self.reply()

    def quit(self):
        """quit, then read until QEMU closes (EOF or reset)."""
        try:
            self.sock.sendall(self.line("quit"))
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        self.sock.close()


def raw_connect(path, proc, poll, pair=None):
    """Wait for the socket file, then connect; retry on ECONNREFUSED/ENOENT."""
    if pair is not None:
        return Raw(None, connected=pair), now(), 0
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError("QEMU exited %s before its socket appeared" % proc.returncode)
        time.sleep(poll)
    socket_seen = now()
    retries = 0
    while True:
        try:
            return Raw(path), socket_seen, retries
        except (ConnectionRefusedError, FileNotFoundError):
            retries += 1
            if proc.poll() is not None:
                raise
            time.sleep(poll)


# ---------------------------------------------------------------- qemu.qmp client

def qemuqmp():
    from qemu.qmp import QMPClient, ConnectError  # noqa: E402  (in the venv only)
    return QMPClient, ConnectError


async def qq_connect(path, proc, poll, pair=None):
    QMPClient, ConnectError = qemuqmp()
    if pair is not None:
        client = QMPClient("bench")
        try:
            await asyncio.wait_for(client.connect(pair), TIMEOUT)
        except asyncio.TimeoutError:
            raise Hung("qemu.qmp connect did not finish within %g s" % TIMEOUT)
        return client, now(), 0
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError("QEMU exited %s before its socket appeared" % proc.returncode)
        await asyncio.sleep(poll)
    socket_seen = now()
    retries = 0
    while True:
        client = QMPClient("bench")
        try:
            await asyncio.wait_for(client.connect(path), TIMEOUT)
            return client, socket_seen, retries
        except asyncio.TimeoutError:
            raise Hung("qemu.qmp connect did not finish within %g s" % TIMEOUT)
        except ConnectError as error:
            if not isinstance(error.exc, (ConnectionRefusedError, FileNotFoundError)):
                raise
            retries += 1
            if proc.poll() is not None:
                raise
            await asyncio.sleep(poll)


async def qq_quit(client):
    """quit, then wait until the connection is down (EOF is success)."""
    try:
        await client.execute("quit")
    except Exception:  # the reply may be lost to the EOF: that is success too
        pass
    try:
        await client.disconnect()
    except EOFError:
        pass


# ---------------------------------------------------------------- rtt

def rtt_raw(args, with_id):
    label = "raw" if with_id else "raw-noid"
    client = Raw(args.socket, with_id=with_id)
    for _ in range(args.warmup):
        client.execute("query-status")
    n, w = args.n, args.window
    for rep in range(args.reps):
        with Meter(n) as m:
            for _ in range(n):
                client.execute("query-status")
        emit(client=label, mode="seq", rep=rep, n=n, window=1, **m.fields)
        with Meter(n) as m:
            done = 0
            while done < n:
                count = min(w, n - done)
                client.batch("query-status", count)
                done += count
        emit(client=label, mode="pipe-batch", rep=rep, n=n, window=w, **m.fields)
    client.sock.close()


async def rtt_qemuqmp(args):
    QMPClient, _ = qemuqmp()
    client = QMPClient("bench")
    await client.connect(args.socket)
    for _ in range(args.warmup):
        await client.execute("query-status")
    n, w = args.n, args.window
    for rep in range(args.reps):
        with Meter(n) as m:
            for _ in range(n):
                await client.execute("query-status")
        emit(client="qemuqmp", mode="seq", rep=rep, n=n, window=1, **m.fields)

        # Sliding window: asyncio.gather over all n, at most w in flight.
        sem = asyncio.Semaphore(w)

        async def one():
            async with sem:
                await client.execute("query-status")

        with Meter(n) as m:
            await asyncio.gather(*(one() for _ in range(n)))
        emit(client="qemuqmp", mode="pipe-window", rep=rep, n=n, window=w, **m.fields)

        # Batches: gather w, then the next w.
        with Meter(n) as m:
            done = 0
            while done < n:
                count = min(w, n - done)
                await asyncio.gather(*(client.execute("query-status") for _ in range(count)))
                done += count
        emit(client="qemuqmp", mode="pipe-batch", rep=rep, n=n, window=w, **m.fields)
    await client.disconnect()


# ---------------------------------------------------------------- spawn

def label(args, base):
    if args.transport == "socketpair":
        base += "-socketpair"
    if args.poll_ms != 2 and args.transport == "socket":
        base += "-%gms" % args.poll_ms
    return base


def spawn_loop(args, name, one_run):
    """Runs `one_run(sock)` until args.runs timed runs (after args.warmup); a hung
    start is reported and not timed."""
    run, attempt = -args.warmup, 0
    while run < args.runs:
        attempt += 1
        if attempt > (args.runs + args.warmup) * 3:
            raise RuntimeError("too many hung starts")
        sock = os.path.join(args.dir, "%s%d.sock" % (name, attempt))
        try:
            fields = one_run(sock)
        except Hung as hang:
            emit(client=label(args, name), run=run, hung=1, error=str(hang))
            continue
        if run >= 0:
            emit(client=label(args, name), run=run, hung=0, **fields)
        run += 1


def spawn_raw(args):
    poll = args.poll_ms / 1000

    def one_run(sock):
        t0 = now()
        proc, pair = spawn_qemu(args.qemu, sock, args.transport)
        spawned = now()
        try:
            client, socket_seen, retries = raw_connect(sock, proc, poll, pair)
        except Hung:
            kill(proc)
            raise
        ready = now()
        if b"prelaunch" not in client.execute("query-status"):
            raise RuntimeError("unexpected status")
        t1 = now()
        client.quit()
        acknowledged = now()
        code = proc.wait()
        reaped = now()
        if code != 0:
            raise RuntimeError("QEMU exited %d after quit" % code)
        return dict(spawn_ms=(spawned - t0) * 1e3, socket_ms=(socket_seen - t0) * 1e3, ready_ms=(ready - t0) * 1e3,
                    retries=retries, quit_ack_ms=(acknowledged - t1) * 1e3, quit_reaped_ms=(reaped - t1) * 1e3)

    spawn_loop(args, "raw", one_run)


def spawn_qemuqmp(args):
    poll = args.poll_ms / 1000
    loop = asyncio.new_event_loop()

    async def one(sock):
        t0 = now()
        proc, pair = spawn_qemu(args.qemu, sock, args.transport)
        spawned = now()
        try:
            client, socket_seen, retries = await qq_connect(sock, proc, poll, pair)
        except Hung:
            kill(proc)
            raise
        ready = now()
        status = await client.execute("query-status")
        if status["status"] != "prelaunch":
            raise RuntimeError("unexpected status %r" % status)
        t1 = now()
        await qq_quit(client)
        acknowledged = now()
        code = proc.wait()
        reaped = now()
        if code != 0:
            raise RuntimeError("QEMU exited %d after quit" % code)
        return dict(spawn_ms=(spawned - t0) * 1e3, socket_ms=(socket_seen - t0) * 1e3, ready_ms=(ready - t0) * 1e3,
                    retries=retries, quit_ack_ms=(acknowledged - t1) * 1e3, quit_reaped_ms=(reaped - t1) * 1e3)

    try:
        spawn_loop(args, "qemuqmp", lambda sock: loop.run_until_complete(one(sock)))
    finally:
        loop.close()


def spawn_call(args):
    """The spawn call alone: Popen of a trivial program, then wait()."""
    program = args.program
    for run in range(-3, args.runs):
        t0 = now()
        proc = subprocess.Popen([program], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=environment(), start_new_session=True)
        spawned = now()
        if proc.wait() != 0:
            raise RuntimeError("%s failed" % program)
        if run >= 0:
            emit(client="raw", run=run, spawn_ms=(spawned - t0) * 1e3, reaped_ms=(now() - t0) * 1e3)


# ---------------------------------------------------------------- scale

class ThreadSampler:
    def __init__(self):
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, proc_status("Threads") - 1)
            time.sleep(0.005)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


async def scale_qemuqmp(args):
    poll = args.poll_ms / 1000
    # Warm up: one VM, so imports and asyncio's own setup are not per VM.
    sock = os.path.join(args.dir, "warm.sock")
    proc, pair = spawn_qemu(args.qemu, sock, args.transport)
    client, _, _ = await qq_connect(sock, proc, poll, pair)
    await qq_quit(client)
    proc.wait()
    await asyncio.sleep(0.1)
    hwm_before, rss_before, threads_before = proc_status("VmHWM"), proc_status("VmRSS"), proc_status("Threads")
    sampler = ThreadSampler()
    t0 = now()
    spawned = [spawn_qemu(args.qemu, os.path.join(args.dir, "vm%d.sock" % i), args.transport)
               for i in range(args.count)]
    procs = [p for p, _ in spawned]

    async def ready(i):
        client, _, retries = await qq_connect(os.path.join(args.dir, "vm%d.sock" % i), procs[i], poll, spawned[i][1])
        return client, (now() - t0) * 1e3, retries

    results = await asyncio.gather(*(ready(i) for i in range(args.count)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        sampler.stop()
        for r in results:
            if not isinstance(r, BaseException):
                await qq_quit(r[0])
        for p in procs:
            kill(p)
        hangs = sum(isinstance(f, Hung) for f in failures)
        emit(client=label(args, "qemuqmp"), count=args.count, hung=hangs, error="; ".join(map(str, failures)))
        sys.exit(3 if hangs == len(failures) else 1)
    ready_s = now() - t0
    threads_at_ready = proc_status("Threads") - 1
    rss_at_ready = proc_status("VmRSS")
    clients = [r[0] for r in results]
    statuses = await asyncio.gather(*(c.execute("query-status") for c in clients))
    if any(s["status"] != "prelaunch" for s in statuses):
        raise RuntimeError("statuses %r" % statuses)
    t1 = now()
    await asyncio.gather(*(qq_quit(c) for c in clients))
    codes = [p.wait() for p in procs]
    down = now() - t1
    peak = sampler.stop()
    if any(codes):
        raise RuntimeError("exit codes %r" % codes)
    times = sorted(r[1] for r in results)
    emit(client=label(args, "qemuqmp"), count=args.count, hung=0, ready_s=ready_s, shutdown_s=down, total_s=ready_s + down,
         slowest_ready_ms=times[-1], median_ready_ms=times[len(times) // 2],
         hwm_before_kib=hwm_before, hwm_after_kib=proc_status("VmHWM"),
         rss_before_kib=rss_before, rss_at_ready_kib=rss_at_ready,
         threads_before=threads_before, threads_at_ready=threads_at_ready, threads_peak=peak,
         threads_after=proc_status("Threads"), max_connect_retries=max(r[2] for r in results))


def scale_raw(args):
    poll = args.poll_ms / 1000
    sock = os.path.join(args.dir, "warm.sock")
    proc, pair = spawn_qemu(args.qemu, sock, args.transport)
    client, _, _ = raw_connect(sock, proc, poll, pair)
    client.quit()
    proc.wait()
    time.sleep(0.1)
    hwm_before, rss_before, threads_before = proc_status("VmHWM"), proc_status("VmRSS"), proc_status("Threads")
    sampler = ThreadSampler()
    t0 = now()
    spawned = [spawn_qemu(args.qemu, os.path.join(args.dir, "vm%d.sock" % i), args.transport)
               for i in range(args.count)]
    procs = [p for p, _ in spawned]
    # One thread, blocking sockets: connect to each in turn (the QEMUs start in parallel).
    clients, times, retries = [], [], []
    for i, (p, pair) in enumerate(spawned):
        try:
            c, _, r = raw_connect(os.path.join(args.dir, "vm%d.sock" % i), p, poll, pair)
        except Hung as hang:
            sampler.stop()
            for c in clients:
                c.quit()
            for p in procs:
                kill(p)
            emit(client=label(args, "raw"), count=args.count, hung=1, error=str(hang))
            sys.exit(3)
        clients.append(c)
        times.append((now() - t0) * 1e3)
        retries.append(r)
    ready_s = now() - t0
    threads_at_ready = proc_status("Threads") - 1
    rss_at_ready = proc_status("VmRSS")
    for c in clients:
        if b"prelaunch" not in c.execute("query-status"):
            raise RuntimeError("unexpected status")
    t1 = now()
    for c in clients:
        c.sock.sendall(c.line("quit"))
    for c in clients:
        try:
            while c.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        c.sock.close()
    codes = [p.wait() for p in procs]
    down = now() - t1
    peak = sampler.stop()
    if any(codes):
        raise RuntimeError("exit codes %r" % codes)
    times.sort()
    emit(client=label(args, "raw"), count=args.count, hung=0, ready_s=ready_s, shutdown_s=down, total_s=ready_s + down,
         slowest_ready_ms=times[-1], median_ready_ms=times[len(times) // 2],
         hwm_before_kib=hwm_before, hwm_after_kib=proc_status("VmHWM"),
         rss_before_kib=rss_before, rss_at_ready_kib=rss_at_ready,
         threads_before=threads_before, threads_at_ready=threads_at_ready, threads_peak=peak,
         threads_after=proc_status("Threads"), max_connect_retries=max(retries))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["rtt", "spawn", "scale", "spawn-call"])
    parser.add_argument("--program", default="/bin/true")
    parser.add_argument("--client", default="raw", choices=["raw", "raw-noid", "qemuqmp"])
    parser.add_argument("--socket")
    parser.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    parser.add_argument("--dir")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--poll-ms", type=float, default=2.0)
    parser.add_argument("--transport", choices=["socket", "socketpair"], default="socket")
    args = parser.parse_args()
    if args.bench == "spawn-call":
        args.runs = 50 if args.runs == 6 else args.runs
        spawn_call(args)
    elif args.bench == "rtt":
        args.warmup = 200 if args.warmup is None else args.warmup
        if args.client == "qemuqmp":
            asyncio.run(rtt_qemuqmp(args))
        else:
            rtt_raw(args, with_id=args.client == "raw")
    elif args.bench == "spawn":
        args.warmup = 1 if args.warmup is None else args.warmup
        if args.client == "qemuqmp":
            spawn_qemuqmp(args)
        else:
            spawn_raw(args)
    else:
        if args.client == "qemuqmp":
            asyncio.run(scale_qemuqmp(args))
        else:
            scale_raw(args)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # one line on stderr, non-zero exit
        print("qmp_peer: %s: %s" % (type(error).__name__, error), file=sys.stderr)
        sys.exit(1)
