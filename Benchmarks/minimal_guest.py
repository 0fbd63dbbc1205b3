"""The second boot floor: a hand-written minimal equivalent of a launch run, with no
launcher. Same kernel (the PVH vmlinux launch extracted into its cache), microvm,
TCG, the same memory; an initramfs this module writes itself (static busybox, the
virtio modules, a few-line /init) that loads the modules, optionally mounts the
same virtiofs share, prints its output on a virtio-serial port and powers off.

What launch adds on top of this (the guest kit's init, its session protocol, the
power-button watcher, the extra devices, the host side) is what `boot.py` measures
against it.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

BUSYBOX = "/bin/busybox"
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
# Loaded in this order (dependencies first), as launch's `launch.modules=` does.
CONSOLE_MODULES = ["virtio_ring", "virtio", "virtio_mmio", "virtio_console"]
VIRTIOFS_MODULES = ["fuse", "virtiofs"]


def init_script(modules, share, command):
    """The /init: stamps of the guest's uptime (at the init's start, after the modules,
    when the output is written) go on the output's last line, for the breakdown."""
    lines = [
        "#!/bin/sh",
        "/bin/busybox mount -t proc proc /proc",
        "read t_init _ < /proc/uptime",
        "/bin/busybox mount -t devtmpfs devtmpfs /dev",
        "/bin/busybox mount -t sysfs sysfs /sys",
    ]
    lines += [f"/bin/busybox insmod /lib/modules/{m}.ko" for m in modules]
    if share:
        tag, guest_path = share
        lines.append(f"/bin/busybox mkdir -p {guest_path}")
        lines.append(f"/bin/busybox mount -t virtiofs {tag} {guest_path}")
    lines += [
        "read t_mods _ < /proc/uptime",
        # A port's name arrives from QEMU after the driver has added it: once it is there,
        # writes reach the host. (Not virtconsole's /dev/hvc0: its node opens before the
        # port is on the driver's console list, and writes until then are dropped.)
        "n=''",
        "until read -r n 2>/dev/null < /sys/class/virtio-ports/vport0p1/name && [ -n \"$n\" ]; do "
        "/bin/busybox usleep 1000; done",
        "read t_out _ < /proc/uptime",
        "{ " + command + "; echo \"stamps $t_init $t_mods $t_out\"; } > /dev/vport0p1",
        "/bin/busybox poweroff -f",
    ]
    return "\n".join(lines) + "\n"


def module_path(release, name):
    r = subprocess.run(["modinfo", "-k", release, "-n", name], capture_output=True, text=True)
    path = r.stdout.strip()
    if r.returncode != 0 or not path:
        raise SystemExit(f"minimal floor: modinfo can't find module {name} for {release}: {r.stderr.strip()}")
    return path


def build_initramfs(out_path, release, modules, share, command):
    """Writes a newc cpio with busybox (as /bin/sh and /bin/busybox), the modules
    (decompressed when packed) and /init. Returns the init script."""
    stage = tempfile.mkdtemp(prefix="bench-minimal-")
    try:
        for d in ("bin", "proc", "sys", "dev", "lib/modules", "mnt"):
            os.makedirs(os.path.join(stage, d), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(stage, "bin/busybox"))
        os.symlink("busybox", os.path.join(stage, "bin/sh"))
        for m in modules:
            src = module_path(release, m)
            dst = os.path.join(stage, "lib/modules", m + ".ko")
            if src.endswith(".xz"):
                with open(dst, "wb") as f:
                    subprocess.run(["xz", "-dc", src], stdout=f, check=True)
            elif src.endswith(".zst"):
                with open(dst, "wb") as f:
                    subprocess.run(["zstd", "-dc", src], stdout=f, check=True)
            else:
                shutil.copy(src, dst)
        script = init_script(modules, share, command)
        with open(os.path.join(stage, "init"), "w") as f:
            f.write(script)
        os.chmod(os.path.join(stage, "init"), 0o755)
        names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=stage, capture_output=True, text=True,
                               check=True).stdout
        with open(out_path, "wb") as f:
            subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner", "0:0"], cwd=stage, input=names.encode(),
                           stdout=f, check=True)
        return script
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def qemu_argv(vmlinux, initrd, memory, tsc_khz, share, workdir):
    """The hand-written QEMU command line. A share needs shared guest memory (vhost-user)."""
    argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", "microvm,x-option-roms=off" + (",memory-backend=mem" if share else ""),
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", memory,
            # microvm's virtio-mmio devices are legacy (0.9) by default, and virtiofsd's
            # libvhost-user refuses legacy devices ("virtio legacy devices aren't supported").
            "-global", "virtio-mmio.force-legacy=false"]
    if share:
        argv += ["-object", f"memory-backend-memfd,id=mem,size={memory},share=on"]
    argv += ["-kernel", vmlinux, "-initrd", initrd,
             "-append", f"console=ttyS0 quiet panic=-1 tsc_early_khz={tsc_khz}",
             "-serial", f"file:{workdir}/console.log",
             "-device", "virtio-serial-device", "-chardev", f"file,id=out,path={workdir}/out",
             "-device", "virtserialport,chardev=out,name=out"]
    if share:
        argv += ["-chardev", f"socket,id=fs0,path={workdir}/fs0.sock",
                 "-device", f"vhost-user-fs-device,chardev=fs0,tag={share[0]}"]
    argv.append("-no-reboot")
    return argv


def virtiofsd_argv(source, workdir):
    return [VIRTIOFSD, f"--socket-path={workdir}/fs0.sock", "-o", f"source={source}", "-o", "cache=auto",
            "-o", "sandbox=namespace"]


class Minimal:
    """One minimal contender: its initramfs (built once) and how to run it."""

    def __init__(self, name, scratch, vmlinux, release, memory, tsc_khz, command, share=None, share_source=None):
        self.name, self.vmlinux, self.memory, self.tsc_khz = name, vmlinux, memory, tsc_khz
        self.share, self.share_source = share, share_source
        modules = CONSOLE_MODULES + (VIRTIOFS_MODULES if share else [])
        self.initrd = os.path.join(scratch, f"minimal-{name}.cpio")
        os.makedirs(scratch, exist_ok=True)
        self.script = build_initramfs(self.initrd, release, modules, share, command)

    def shell(self):
        """The run as a shell script, for BENCHMARKS.md."""
        lines = ["D=$(mktemp -d /tmp/bench-min-XXXXXX)"]
        if self.share:
            lines.append(shlex.join(virtiofsd_argv(self.share_source, "@D@")).replace("@D@", "$D") + " &")
            lines.append("while [ ! -S $D/fs0.sock ]; do sleep 0.001; done")
        lines.append(shlex.join(qemu_argv(self.vmlinux, self.initrd, self.memory, self.tsc_khz, self.share, "@D@"))
                     .replace("@D@", "$D"))
        lines.append("cat $D/out; rm -rf $D")
        return "\n".join(lines)

    def run(self, cpu_seconds):
        workdir = tempfile.mkdtemp(prefix="bench-min-", dir="/tmp")
        t0 = time.monotonic()
        cpu = 0.0
        fsd = None
        if self.share:
            with open(f"{workdir}/virtiofsd.log", "wb") as errlog:
                fsd = subprocess.Popen(virtiofsd_argv(self.share_source, workdir), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=errlog)
            deadline = time.monotonic() + 10
            while not os.path.exists(f"{workdir}/fs0.sock"):
                if time.monotonic() > deadline:
                    raise SystemExit("minimal: virtiofsd's socket never appeared")
                time.sleep(0.0005)
        with open(f"{workdir}/qemu.log", "wb") as errlog:
            q = subprocess.Popen(qemu_argv(self.vmlinux, self.initrd, self.memory, self.tsc_khz, self.share, workdir),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)
        try:
            _, status, ru = os.wait4(q.pid, 0)
        except BaseException:
            q.kill()
            raise
        wall = time.monotonic() - t0
        cpu += cpu_seconds(ru)
        if fsd:
            _, _, ru = os.wait4(fsd.pid, 0)
            cpu += cpu_seconds(ru)
        with open(f"{workdir}/out", errors="replace") as f:
            out = f.read()
        with open(f"{workdir}/qemu.log", errors="replace") as f:
            err = f.read()
        with open(f"{workdir}/console.log", errors="replace") as f:
            err += f.read()
        shutil.rmtree(workdir, ignore_errors=True)
        m = re.search(r"stamps (\S+) (\S+) (\S+)", out)
        stamps = {"init": float(m.group(1)), "modules": float(m.group(2)), "output": float(m.group(3))} if m else {}
        return {"wall": wall, "cpu": cpu, "rc": os.waitstatus_to_exitcode(status), "stdout": out, "stderr": err,
                "guest": stamps, "phases": {}}
