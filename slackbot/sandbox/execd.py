"""The sandbox's command channel: one long-lived process in the agent's container that runs each
command it is sent and answers with its exit code and output, so a command costs a fork, not a
`docker exec` round trip. It runs as the agent's user: the host trusts nothing it says beyond one
capped, well-formed answer per request (slackbot/sandbox/channel.py), and keeps its own deadlines.

Protocol: a request is one JSON line on stdin {"id", "cmd", "timeout", "grace", "keep", "env", "cwd", "login"};
an answer is a line `SLACKBOT-FRAME <bytes>` on stdout, then that many bytes of JSON {"id", "code",
"timed_out", "output" (base64), "dropped"}. Python's standard library only: the sandbox image has it.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile


def kept(path, keep):
    """The output's head and tail, `keep` bytes each, and how many bytes were dropped between them."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= 2 * keep:
            return f.read(2 * keep), 0
        head = f.read(keep)
        f.seek(size - keep)
        return head + f.read(keep), size - 2 * keep


# A login shell's startup files: commands run with the environment they give (read again whenever
# one of them changes), as `bash -lc` would, without paying for reading them on every command.
PROFILES = ("/etc/profile", "/etc/profile.d", "/etc/bash.bashrc", "~/.profile", "~/.bash_profile", "~/.bash_login",
            "~/.bashrc")
login: dict = {"stamp": None, "env": None}


def login_env():
    stamp: list = []
    for name in PROFILES:
        try:
            info = os.stat(os.path.expanduser(name))
            stamp.append((name, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((name, None, None))
    if stamp != login["stamp"]:
        found = subprocess.run(["bash", "-lc", "env -0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=30).stdout
        env = dict(item.split("=", 1) for item in found.decode(errors="replace").split("\0") if "=" in item)
        env.pop("_", None)
        login["stamp"], login["env"] = stamp, env or dict(os.environ)
    return dict(login["env"])


def kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def run(request):
    fd, path = tempfile.mkstemp(prefix="slackbot-cmd-", dir="/tmp")
    # "login": false: the container's own environment, no startup file of the home directory read.
    env = login_env() if request.get("login", True) else dict(os.environ)
    env.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
    try:
        # A session of its own: a timeout signals the command and everything it started.
        proc = subprocess.Popen(["bash", "-c", request["cmd"]], stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.STDOUT, cwd=request.get("cwd") or None, env=env,
                                start_new_session=True)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        return {"code": 127, "timed_out": False, "output": base64.b64encode(str(exc).encode()).decode(),
                "dropped": 0}
    os.close(fd)
    timed_out = False
    try:
        code = proc.wait(timeout=request["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=request.get("grace", 5))
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        code = 124
    # Background processes the command started may live on (until the task ends); their later
    # output goes to the unlinked file, never into this answer.
    data, dropped = kept(path, request.get("keep", 2 << 20))
    os.unlink(path)
    return {"code": code if code >= 0 else 128 - code, "timed_out": timed_out,
            "output": base64.b64encode(data).decode(), "dropped": dropped}


def main():
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            answer = run(request)
            answer["id"] = request["id"]
        except Exception as exc:  # a bad request is answered, never the end of the channel
            answer = {"id": None, "error": f"{exc.__class__.__name__}: {exc}"}
        payload = json.dumps(answer).encode()
        out.write(b"SLACKBOT-FRAME %d\n" % len(payload) + payload)
        out.flush()


if __name__ == "__main__":
    main()
