"""The `python` tool: model-written code run in the sandbox of chatstack.tools.sandbox.

`python` is the function handed to TRL (`GRPOTrainer(tools=[python])`) and to
`apply_chat_template(tools=[python])`; `transformers.utils.get_json_schema(python)` reads its
signature and the docstring above `Raises:` (what follows it stays out of the prompt).
"""
from __future__ import annotations

from chatstack.tools.sandbox import ERROR_PREFIX, SandboxLimits, run_sandboxed

DEFAULT_LIMITS = SandboxLimits()


def python(code: str) -> str:
    """Run Python code and return what it prints.

    Args:
        code: Python code (standard library only).

    Raises:
        Nothing: the printed output comes back as text (a final expression's value is printed
        too, as in a notebook), and every failure (exception, timeout, limit, blocked action)
        as text starting with "Error:". (get_json_schema stops reading at "Raises:", so what
        follows stays out of the prompt.)

    Security. Each call runs in a fresh, separate process (``python -I -S``) with an empty
    environment, in a private temporary working directory, with limits on CPU time (5 s),
    wall-clock time (10 s), address space (512 MiB), output (1 MiB, 2,000 characters returned)
    and written files, and no child processes or threads (RLIMIT_NPROC=0). On Linux, where the
    kernel allows it (root, or unprivileged user namespaces), it also gets its own network
    namespace (no network at all), pid namespace (no other process visible or killable), and
    a read-only root holding only the interpreter and the system libraries, with a 16 MiB
    tmpfs as working directory; as root it runs as uid 65534 with no capabilities. An audit
    hook (PEP 578) ends the run on process creation, signals, sockets, ctypes, directory file
    descriptors, and file access outside the working directory and the standard library.
    Threads cannot be started, and `shutil.rmtree` / `TemporaryDirectory` cleanup are refused
    (they need directory descriptors); every call starts afresh (no state between calls).

    It protects against: fork and memory bombs, infinite loops, deep recursion, huge output,
    filling the disk, reading the caller's environment variables or files (e.g. /etc/passwd
    or the repository), writing or deleting files outside its directory, network access,
    killing or signalling the caller, starting subprocesses or a shell, and code that patches
    the modules the audit hook could rely on. tests/test_sandbox_security.py checks each of
    these, as root and as an unprivileged user, with all layers and with each layer alone.

    It does not protect against: kernel exploits and bugs in the interpreter (the process
    shares the host's kernel; there is no seccomp filter and no VM); timing side channels;
    use of CPU and memory up to the limits (a burst of calls can still load the machine). Where
    namespaces are unavailable (containers without CAP_SYS_ADMIN, kernels with unprivileged
    user namespaces disabled) the file, network and signal barriers are the audit hook alone,
    which native code or an interpreter bug could get around (ctypes is blocked, but it is a
    Python-level check); there, the standard library stays readable, other paths can still be
    stat()-ed (existence, size, not contents), and the disk bound is 64 files of 1 MiB.
    `chatstack.tools.sandbox.sandbox_layers()` reports what a machine provides.
    """
    return run_sandboxed(code, DEFAULT_LIMITS).as_text()


def make_python_tool(limits: SandboxLimits | None = None, interpreter: str | None = None):
    """A `python` tool with other limits or another interpreter (same name, docstring, schema)."""
    limits = limits or DEFAULT_LIMITS

    def python(code: str) -> str:  # noqa: F811 - same name on purpose: the tool's name is __name__
        return run_sandboxed(code, limits, python=interpreter).as_text()

    python.__doc__ = globals()["python"].__doc__
    return python


__all__ = ["python", "make_python_tool", "ERROR_PREFIX", "DEFAULT_LIMITS"]
