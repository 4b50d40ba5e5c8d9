"""Run untrusted Python in a separate, contained process (the host side; the child side is
_sandbox_child.py). Standard library only, so it can be imported and tested without the rest
of chatstack.

    result = run_sandboxed("print(12345 * 67890)")
    result.ok, result.output, result.as_text()      # True, '838102050', '838102050'

Layers, each used where the OS allows it (``sandbox_layers()`` says which are active here):

1. a separate process started with ``python -I -S -B`` (no site-packages, no PYTHON* vars),
   an empty environment, no inherited file descriptors, its own session;
2. Linux namespaces: network (no interface but a down loopback), mount, pid (no other process
   is visible or can be signalled), ipc, uts, and a user namespace when not root;
3. a read-only root holding only the interpreter and the system libraries (no /etc, /home,
   /root, /proc, site-packages, repository), and as working directory a private tmpfs of
   limited size that vanishes with the process;
4. as root: the drop to uid/gid 65534 (root ignores RLIMIT_NPROC and may signal anything);
   no_new_privs; every capability gone after the exec;
5. rlimits: CPU seconds, address space, file size (which caps the output, sent to a file),
   open files, no core dumps, RLIMIT_NPROC=0 (no fork, no threads); a wall-clock timeout
   enforced by the host, which kills the whole process group;
6. a PEP 578 audit hook in the child that ends the run on process creation, signals, sockets,
   native code (ctypes), directory file descriptors (dir_fd= paths would dodge its checks) and
   file access outside the working directory and the standard library; it binds everything it
   uses (C functions of posix, its own realpath) since the code may patch os, posixpath or
   builtins. It is the only file and network barrier when (2)/(3) are unavailable.

Code, output and the layers report travel through unnamed temporary files (no path the code
could replace with a symlink). The environment is empty but for TMPDIR, the working directory.
"""
from __future__ import annotations

import marshal
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

ERROR_PREFIX = "Error:"
EXIT_VIOLATION, EXIT_SETUP = 86, 87
MiB = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_bytes: int = 512 * MiB  # address space (RLIMIT_AS), interpreter included
    output_bytes: int = 1 * MiB  # RLIMIT_FSIZE: stdout+stderr go to a file; also caps files it writes
    disk_bytes: int = 16 * MiB  # size of the private tmpfs working directory
    inodes: int = 1024
    open_files: int = 64
    max_output_chars: int = 2000  # what comes back to the model

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {value}")


@dataclass
class SandboxResult:
    ok: bool
    output: str  # stdout and stderr interleaved, truncated to max_output_chars
    error: str | None = None  # one line: why the run failed
    returncode: int | None = None
    wall_seconds: float = 0.0
    layers: dict = field(default_factory=dict)

    def as_text(self) -> str:
        """The tool result a model sees: the output, or `Error: <reason>` then the output."""
        if self.ok:
            return self.output if self.output else "(no output)"
        return f"{ERROR_PREFIX} {self.error}" + (f"\n{self.output}" if self.output else "")


@lru_cache(maxsize=1)
def _child_source() -> str:
    return resources.files("chatstack.tools").joinpath("_sandbox_child.py").read_text() if __package__ else \
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")).read()


def default_python() -> str:
    exe = sys.executable or shutil.which("python3") or "/usr/bin/python3"
    return os.path.realpath(exe)


def run_sandboxed(code: str, limits: SandboxLimits | None = None, *, python: str | None = None,
                  namespaces: bool = True, audit_hook: bool = True) -> SandboxResult:
    """Run `code` in the sandbox and return what happened. Never raises for anything the code
    does; errors (timeouts, limits, exceptions, blocked actions) are in the result.
    `namespaces=False` / `audit_hook=False` switch a layer off (tests measure each layer)."""
    limits = limits or SandboxLimits()
    python = os.path.realpath(python) if python else default_python()
    tmp = tempfile.mkdtemp(prefix="chatstack-sbx-")
    t0 = time.perf_counter()
    try:
        os.chmod(tmp, 0o711)  # uid 65534 may reach work/ (when there is no private tmpfs) but not list
        workdir, newroot = os.path.join(tmp, "work"), os.path.join(tmp, "root")
        os.mkdir(workdir, 0o700)
        os.mkdir(newroot, 0o755)
        # code, output and layers report go through unnamed files: no path the code could swap for a link
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as report:
            stdin.write(code.encode("utf-8", errors="surrogatepass"))
            stdin.seek(0)
            cfg = {
                "workdir": workdir, "newroot": newroot, "layers_fd": report.fileno(), "python": python,
                # the interpreter's own prefix (a venv's site-packages stays out of the sandbox's root)
                "ro_paths": sorted({os.path.realpath(sys.base_prefix), os.path.dirname(os.path.dirname(python))}),
                "namespaces": bool(namespaces), "audit_hook": bool(audit_hook), "child_src": _child_source(),
                "limits": {"cpu": int(limits.cpu_seconds), "memory": int(limits.memory_bytes),
                           "fsize": int(limits.output_bytes), "nofile": int(limits.open_files),
                           "disk": int(limits.disk_bytes), "inodes": int(limits.inodes)},
            }
            timed_out = False
            try:
                argv = [python, "-I", "-S", "-B", "-c", cfg["child_src"], "stage1", marshal.dumps(cfg).hex()]
                proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env={}, cwd=tmp,
                                        close_fds=True, pass_fds=(report.fileno(),), start_new_session=True)
            except OSError as e:
                return SandboxResult(False, "", f"sandbox unavailable: cannot start {python}: {e}")
            try:
                proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
                proc.wait()
            wall = time.perf_counter() - t0
            report.seek(0)
            layers = _read_layers(report)
            out.seek(0)
            raw = out.read(limits.output_bytes + 1)
        text = raw.decode("utf-8", errors="replace")
        return _classify(proc.returncode, timed_out, text, len(raw), limits, layers, wall)
    finally:
        _rmtree(tmp)


def _kill(proc: subprocess.Popen) -> None:
    for fn in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            fn()
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _read_layers(f) -> dict:
    try:
        layers = marshal.load(f)
        return layers if isinstance(layers, dict) else {}
    except (OSError, ValueError, EOFError, TypeError):
        return {}


def _rmtree(path: str) -> None:
    def retry(func, p, _exc):  # the code may have left read-only dirs behind
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700) if os.path.isdir(p) and not os.path.islink(p) else None
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=retry)


def _truncate(text: str, limit: int) -> str:
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... output truncated: {len(text)} characters in all]"


def _classify(rc: int, timed_out: bool, text: str, nbytes: int, limits: SandboxLimits, layers: dict,
              wall: float) -> SandboxResult:
    def fail(reason: str, body: str = text) -> SandboxResult:
        reason = reason if len(reason) <= 300 else reason[:300] + " ..."
        return SandboxResult(False, _truncate(body, limits.max_output_chars), reason, rc, wall, layers)

    if timed_out:
        return fail(f"timed out after {limits.wall_seconds:g} s (wall-clock limit)")
    if nbytes >= limits.output_bytes:  # the file size limit was hit (python ignores SIGXFSZ: writes fail)
        return fail(f"output limit exceeded ({limits.output_bytes} bytes)")
    if rc == 0:
        return SandboxResult(True, _truncate(text, limits.max_output_chars), None, rc, wall, layers)
    if rc == EXIT_SETUP:
        return fail(f"sandbox unavailable: {layers.get('error', 'setup failed')}")
    if rc == EXIT_VIOLATION:
        lines = [ln for ln in text.splitlines() if ln.startswith("[sandbox] blocked:")]
        what = lines[-1].removeprefix("[sandbox] blocked:").strip() if lines else "a forbidden action"
        body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("[sandbox] blocked:"))
        return fail(f"blocked by the sandbox: {what}", body)
    if rc < 0:
        sig = -rc
        reasons = {
            signal.SIGXCPU: f"CPU time limit exceeded ({limits.cpu_seconds} s)",
            signal.SIGXFSZ: f"output limit exceeded ({limits.output_bytes} bytes)",
            signal.SIGSEGV: "crashed (segmentation fault; too deep a recursion?)",
            signal.SIGKILL: f"CPU time limit exceeded ({limits.cpu_seconds} s)",  # hard limit; pid 1 ignores SIGXCPU
        }
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return fail(reasons.get(sig, f"killed by signal {name}"))
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if rc == 1 and last:
        if last.startswith("MemoryError"):
            return fail(f"MemoryError (memory limit of {limits.memory_bytes // MiB} MiB)")
        return fail(last)
    return fail(f"exited with status {rc}")


@lru_cache(maxsize=4)
def sandbox_layers(python: str | None = None) -> dict:
    """Which layers a run gets on this machine (namespaces, chroot, uid, rlimits, audit hook)."""
    return run_sandboxed("pass", python=python).layers
