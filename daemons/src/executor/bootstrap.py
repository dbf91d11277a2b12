"""FaaS executor child: runs the tasks of ONE function for the Rust pool that started it.

Started as `python -c BOOTSTRAP CONFIG_JSON` (see executor/sandbox.rs): it applies its limits
and, in a root-run sandbox, switches to its own unprivileged uid before any function code runs.
It starts unbound (a "spare"); the first request carrying a body binds it to that function for
life, whether or not the body loads: a load error (a SyntaxError, say) is the answer to every
later call. A request without a body to an unbound child is answered {"need_body": true}, and
the pool resends it with the body.

Frames on the pipes are a 4-byte big-endian length and a UTF-8 JSON object (tokio_util's
LengthDelimitedCodec on the Rust side). Request: {"function_id", "format": "dill"|"source",
"body"?, "entrypoint"?, "args": base64 pickle of ((args), {kwargs}) for dill, {"args": [...],
"kwargs": {...}} for source}. Reply: {"ok": bool, "result", "error"?: {"type", "message",
"traceback"}, "log": what the function printed, capped}.
"""
import base64
import io
import json
import os
import pickle
import signal
import struct
import sys
import time
import traceback

CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
LIMITS = CONFIG.get("limits", {})
SANDBOXED = bool(CONFIG.get("sandboxed"))

# The frame pipes are taken off fds 0 and 1 first, so that a user's print (or a C library
# writing to fd 1) can never interleave with a frame: fd 1 becomes stderr, fd 0 /dev/null.
# The request pipe is read with raw read(2)s of 64 KiB: the pool writes it in packet mode
# (O_DIRECT), where one read returns one write's packet, so a request of up to 4 KiB is one
# read, and this child never takes a request off the pipe before it is ready to run it. The
# pool relies on that to take back requests it wrote ahead (executor/child.rs, "Writing
# ahead"). A longer request comes in several packets, each a read.
FRAMES_IN = os.dup(0)
FRAMES_OUT = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
sys.stdin = open(os.devnull)
sys.stdout = sys.stderr

try:
    import dill  # imported up front so the first dill task does not pay for it
except ImportError:
    dill = None


def _confine():
    """Subreaper, uid and rlimits: done before any function code can run."""
    import ctypes
    import resource

    # Orphans of this child's processes come back to it (not to the daemon or init), so the end
    # of a task can find and kill them even after a double fork or setsid.
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # When the machine runs out of memory, the kernel kills a task's child before any part of
    # the platform (Redis, the daemons): raising one's own score needs no privilege, and the
    # processes a task starts inherit it.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    # Tasks yield the CPU to the platform: a task that spins every core (threads, processes)
    # slows other tasks, but Redis and the daemons, at nice 0, still get the CPU first.
    os.nice(10)
    uid = CONFIG.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # drops CAP_SETUID/CAP_SETGID, the only ones bwrap gave
    for name, key in (("RLIMIT_AS", "memory"), ("RLIMIT_NOFILE", "open_files"), ("RLIMIT_NPROC", "processes")):
        value = LIMITS.get(key)
        if value:
            # RLIMIT_NPROC counts per uid: it binds only where this child has a uid of its own.
            if key == "processes" and not SANDBOXED:
                continue
            resource.setrlimit(getattr(resource, name), (value, value))


_confine()

DILL_MISSING = (
    "the dill format needs the Python package 'dill' in the worker's interpreter ("
    + sys.executable
    + "): install it with `"
    + sys.executable
    + " -m pip install dill`, or point --python / FAAS_PYTHON at an interpreter that has it"
)
MAX_OUTPUT = int(LIMITS.get("max_output") or 1 << 20)
MAX_RESULT = int(LIMITS.get("max_result") or 16 << 20)

# This child's one function: (function_id, callable or None, load error or None).
BOUND = None


class TaskFailure(Exception):
    """A failure of the platform's own making, reported with a type name of its choosing."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class CappedLog(io.TextIOBase):
    """print/log capture that keeps the first MAX_OUTPUT bytes and counts the rest."""

    def __init__(self):
        self.parts = []
        self.kept = 0
        self.cut = 0

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            s = str(s)
        room = MAX_OUTPUT - self.kept
        if room > 0:
            data = s.encode("utf-8", "replace")
            head = data[:room]
            self.parts.append(head.decode("utf-8", "ignore"))
            self.kept += len(head)
            self.cut += len(data) - len(head)
        else:
            self.cut += len(s.encode("utf-8", "replace"))
        return len(s)

    def getvalue(self):
        text = "".join(self.parts)
        if self.cut:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "[faas: %d bytes of output cut; the limit is %d bytes]\n" % (self.cut, MAX_OUTPUT)
        return text


# Bytes read off the request pipe and not used yet: never more than the rest of one request.
_pending = bytearray()


def read_exact(n):
    global _pending
    while len(_pending) < n:
        # At least a packet's size (4 KiB): a shorter read of a packet would drop its rest.
        chunk = os.read(FRAMES_IN, max(1 << 16, n - len(_pending)))
        if not chunk:
            return None
        _pending += chunk
    data = bytes(_pending[:n])
    del _pending[:n]
    return data


def write_frame(obj):
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace")
    FRAMES_OUT.write(struct.pack(">I", len(data)) + data)
    FRAMES_OUT.flush()


def need_dill():
    if dill is None:
        raise TaskFailure("DillMissing", DILL_MISSING)
    return dill


def load(req):
    if req["format"] == "dill":
        fn = need_dill().loads(base64.b64decode(req["body"]))
    else:
        namespace = {"__name__": "faas_function"}
        exec(compile(req["body"], "<function " + req["function_id"] + ">", "exec"), namespace)
        name = req.get("entrypoint") or ""
        if name not in namespace:
            raise TaskFailure("EntrypointMissing", "the source does not define " + repr(name))
        fn = namespace[name]
    if not callable(fn):
        raise TaskFailure("NotCallable", "the registered object is a %s, not a function" % type(fn).__name__)
    return fn


def bind(req):
    """Loads the body once; the outcome, function or failure reply, is this child's for life."""
    global BOUND
    try:
        BOUND = (req["function_id"], load(req), None)
    except BaseException as exc:
        BOUND = (req["function_id"], None, (error_of(exc), pickled_error(req["format"], exc)))


# Values whose dill pickle is pickle's, byte for byte: dumped by the C pickler, 15x faster.
_PLAIN = (type(None), bool, int, float, str, bytes)


def load_args(req):
    if req["format"] == "dill":
        raw = base64.b64decode(req["args"])
        # What dill's Unpickler reads differently from pickle's (its find_class special cases
        # and its own reconstructors): a payload naming neither is read by the C unpickler,
        # 4x faster.
        if b"dill" in raw or b"__builtin__" in raw:
            value = need_dill().loads(raw)
        else:
            value = pickle.loads(raw)
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise TaskFailure("BadArguments", "the payload must be a pickled ((args...), {kwargs}) pair")
        args, kwargs = value
    else:
        args, kwargs = req["args"].get("args", []), req["args"].get("kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise TaskFailure("BadArguments", "args must be a sequence and kwargs a mapping")
    return args, kwargs


def too_large(size):
    return TaskFailure(
        "ResultTooLarge",
        "the result is %d bytes encoded; the limit is %d bytes (--max-result)" % (size, MAX_RESULT),
    )


def encode_result(fmt, value):
    if fmt == "dill":
        if type(value) in _PLAIN:
            data = base64.b64encode(pickle.dumps(value, need_dill().settings["protocol"])).decode()
        else:
            data = base64.b64encode(need_dill().dumps(value)).decode()
        if len(data) > MAX_RESULT:
            raise too_large(len(data))
        return data
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"))
    except (TypeError, ValueError) as e:
        raise TaskFailure("ResultNotSerializable", "the return value is not JSON: %s" % e)
    if size > MAX_RESULT:
        raise too_large(size)
    return value


def error_of(exc):
    kind = exc.kind if isinstance(exc, TaskFailure) else type(exc).__name__
    tb = "" if isinstance(exc, TaskFailure) else "".join(
        traceback.format_exception(type(exc), exc, user_frames(exc.__traceback__)))
    return {"type": kind, "message": str(exc), "traceback": tb}


def user_frames(tb):
    """The traceback from the first frame that is not this file's: users see their own code,
    not the platform's call into it. All of it if every frame is ours (a platform bug)."""
    # Started with -c, this file has no __file__: its frames are named like this function's.
    own = user_frames.__code__.co_filename
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename == own:
        tb = tb.tb_next
    return tb if tb is not None else first


def descendants():
    """Pids of this process's children, theirs, and so on (orphans come back: subreaper)."""
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers():
    """Every process the task started dies with the task, however it detached itself."""
    # As the subreaper, this child is an ancestor of every process the task left behind, setsid
    # or double-forked ones included: no child at all means none left. That is the common case,
    # and one waitpid answers it without reading /proc (which cost ~15 % of no-op throughput).
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    if not descendants():
        return
    if SANDBOXED and os.getpid() <= 2:
        # Alone in this PID namespace with bwrap's init (pid 1, which kill(-1) spares): every
        # other process here is the task's.
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    # SIGKILL cannot be refused, but a killed process is gone only once the kernel has run it
    # to its exit and it is reaped: on a loaded machine that takes a while, so wait for it
    # (bounded), rather than leave a zombie or a dying process for the next task to see.
    deadline = time.monotonic() + 5
    while True:
        pids = descendants()
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap()
        if descendants():
            time.sleep(0.002)
    reap()


def pickled_error(fmt, exc):
    """dill callers get the exception itself to re-raise, if it pickles and fits."""
    if fmt != "dill" or dill is None or isinstance(exc, TaskFailure):
        return None
    try:
        result = base64.b64encode(dill.dumps(exc)).decode()
    except BaseException:
        return None
    return result if len(result) <= MAX_RESULT else None


def handle(req):
    if BOUND is None and "body" not in req:
        return {"need_body": True}
    if BOUND is not None and BOUND[0] != req["function_id"]:
        error = {"type": "ProtocolError", "message": "this child runs function " + BOUND[0], "traceback": ""}
        return {"ok": False, "result": None, "log": "", "error": error}
    log = CappedLog()
    saved = sys.stdout, sys.stderr
    try:
        sys.stdout = sys.stderr = log
        try:
            if BOUND is None:
                bind(req)  # what the module prints while it loads is the first task's log
            if BOUND[2] is not None:
                error, result = BOUND[2]
                return {"ok": False, "result": result, "error": error, "log": log.getvalue()}
            args, kwargs = load_args(req)
            value = BOUND[1](*args, **kwargs)
        finally:
            sys.stdout, sys.stderr = saved
        return {"ok": True, "result": encode_result(req["format"], value), "log": log.getvalue()}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the child must live on
        sys.stdout, sys.stderr = saved
        return {"ok": False, "result": pickled_error(req["format"], exc), "error": error_of(exc), "log": log.getvalue()}
    finally:
        kill_leftovers()


def main():
    write_frame({"ready": True, "pid": os.getpid(), "dill": dill is not None})
    while True:
        header = read_exact(4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        body = read_exact(length)
        if body is None:
            return
        write_frame(handle(json.loads(body)))


main()
