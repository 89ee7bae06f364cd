"""The REPL part of `bench/fuzz.py`: sessions of fuzzed lines typed into the real REPL in a pseudo-terminal.

Each line is typed with its Enter; once the output has been quiet for a moment, a marker line (``/zzsyncN``, an
unknown command) is typed and its error awaited: then the REPL has read the line, done what it says and is back
at its prompt. A line whose marker does not come (`SYNC_TIMEOUT` after the output went quiet; the output may run
for `LINE_TIMEOUT`) gets Ctrl-C (and the end of a paste, in case a line opened one); if the marker then comes, the
line "needed Ctrl-C"; if not, the session hung and is killed. A session a line ends (Ctrl-D at an empty prompt)
is counted by its exit status, also when it ends only while Ctrl-C is tried (a session holding much memory takes
seconds to exit), and the next session goes on with the next line.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time

import fuzz_inputs as inputs
import pexpect
from fuzz import ANSI, LINE_TIMEOUT, RECOVER_TIMEOUT, TEXTGEN, Tally, Work

#: The quitting commands are left out: sessions then last their length (Ctrl-D in a line still ends one).
QUITS = {"quit", "exit", "q"}
#: A part of the prompt's toolbar, drawn once the line editor reads keys.
TOOLBAR = "│ model "
#: Seconds to wait for the marker once the line's output has gone quiet: the REPL is at its prompt by then unless
#: the line left it waiting (step mode's keys, an unended paste, a read from a pipe or the terminal), or still
#: computing in silence; either way Ctrl-C follows.
SYNC_TIMEOUT = 3


def commands() -> list[tuple[str, bool]]:
    """Every command name and alias, with whether it takes a path."""
    from repl.commands import REGISTRY

    return [(n, c.path) for c in REGISTRY.commands for n in (c.name, *c.aliases) if n not in QUITS]


class Pty:
    """The REPL in a pseudo-terminal, read as a person sees it (escape codes taken out), answering the cursor
    position requests a terminal answers."""

    def __init__(self, work: Work, argv: list[str]):
        env = {**work.env, "TERM": "xterm-256color"}
        self.child = pexpect.spawn(TEXTGEN, argv, env=env, cwd=str(work.cwd), dimensions=(40, 120))
        self.child.delaybeforesend = None
        os.set_blocking(self.child.child_fd, False)  # `write` reads while it writes: neither side can block
        self.seen = ""
        #: Everything shown (escape codes out), never consumed by `wait_for`: what a failure's record shows.
        self.log = ""
        self.tail = ""
        self.synced = ""
        self.traceback = False
        self.ended = False

    def read(self, timeout: float = 0.05) -> bool:
        try:
            data = self.child.read_nonblocking(1 << 20, timeout=timeout)
        except pexpect.TIMEOUT:
            return False
        except pexpect.EOF:
            self.ended = True
            return False
        for _ in range(data.count(b"\x1b[6n")):
            with contextlib.suppress(OSError):
                os.write(self.child.child_fd, b"\x1b[1;1R")
        text = ANSI.sub("", self.tail + data.decode("utf-8", "replace"))
        cut = text.rfind("\x1b")
        self.tail, text = (text[cut:], text[:cut]) if cut >= 0 and len(text) - cut < 64 else ("", text)
        self.traceback = self.traceback or "Traceback (most recent call last)" in self.seen[-40:] + text
        self.seen = (self.seen + text)[-200_000:]
        self.log = (self.log + text)[-4000:]
        return True

    def write(self, data: bytes, limit: float = LINE_TIMEOUT) -> bool:
        """Type `data`, reading the output meanwhile: a long line echoed into a full output buffer would otherwise
        stop the REPL reading while we wait to write. False if it could not all be typed within `limit`."""
        end = time.monotonic() + limit
        while data:
            try:
                data = data[os.write(self.child.child_fd, data[:1024]) :]
            except BlockingIOError:
                if time.monotonic() > end:
                    return False
                self.read(0.02)
            except OSError:
                self.ended = True
                return False
            else:
                self.read(0)
        return True

    def quiet(self, limit: float, still: float = 0.2) -> bool:
        """Read until nothing came for `still` seconds; False if that took more than `limit` or the REPL ended."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end and not self.ended:
            if self.read(0.05):
                last = time.monotonic()
            elif time.monotonic() - last >= still:
                return True
        return False

    def wait_for(self, needle: str, limit: float) -> bool:
        end = time.monotonic() + limit
        while needle not in self.seen:
            if self.ended or time.monotonic() > end:
                return False
            self.read(0.05)
        self.seen = self.seen[self.seen.index(needle) + len(needle) :]
        return True

    def sync(self, n: int, limit: float) -> bool:
        """Type marker `n` and wait for its error, then for the prompt; `synced` says how far it got."""
        self.synced = "marker not typed"
        if not self.write(f"/zzsync{n}\r".encode(), limit):
            return False
        self.synced = "marker typed, its error not shown"
        if not self.wait_for(f"unknown command /zzsync{n} ", limit):
            return False
        self.synced = "marker's error shown, the prompt not back"
        if not self.prompt_up(limit):
            return False
        self.synced = "back"
        return True

    def prompt_up(self, limit: float) -> bool:
        """Wait for the prompt's toolbar: the line editor is reading keys now. Typed before (between two prompts,
        or while the REPL starts), Ctrl-C, Ctrl-Z or Ctrl-\\ would be the terminal's signals, which a person sends
        on purpose, not input to fuzz."""
        return self.wait_for(TOOLBAR, limit) and self.quiet(limit, 0.15)

    def close(self) -> int | None:
        """End the session; its exit status (negative: the signal that ended it; None: killed here)."""
        if not self.ended and self.child.isalive():
            self.write(b"\x03/quit\r", 10)
            end = time.monotonic() + 20
            while not self.ended and time.monotonic() < end:
                self.read(0.1)
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
            self.child.wait()
            return None
        self.child.wait()
        return self.child.exitstatus if self.child.signalstatus is None else -self.child.signalstatus


def session_case(work: Work, tally: Tally, j: int, lines: int, names: list[tuple[str, bool]], paths: list[str]) -> None:
    """Session `j`: `lines` fuzzed lines, in as many REPL processes as lines that end one need."""
    rng = random.Random(f"{work.seed}:repl:{j}")
    todo = [inputs.repl_line(rng, names, paths) for _ in range(lines)]
    argv = ["repl", "-c", str(work.bases[j % len(work.bases)]), "--len", "20"]
    k, marker = 0, 0
    while k < len(todo):
        pty = Pty(work, argv)
        if not (pty.wait_for("type /help", 60) and pty.prompt_up(60)):
            _end(tally, pty, {"input": f"repl session {j}: start"}, hung=True)
            return
        hung, first, steps = False, k, []
        while k < len(todo) and not pty.ended:
            kind, line = todo[k]
            k += 1
            typed = pty.write(line + b"\r")
            with tally.lock:
                tally.tried += 1
                tally.kinds[kind] += 1
            marker += 1
            start = time.monotonic()
            quiet = typed and pty.quiet(LINE_TIMEOUT)
            if quiet and pty.sync(marker, SYNC_TIMEOUT):
                continue
            if pty.ended:
                break
            steps = [_saw("the line", typed, quiet, pty, start)]
            if _recover(pty, marker * 1000, steps):
                with tally.lock:
                    tally.recovered += 1
                    if sum("needed Ctrl-C" in e for e in tally.examples) < 20:
                        tally.examples.append({"needed Ctrl-C": f"session {j} line {k}: {kind}", "line": repr(line)})
                continue
            # Ended meanwhile: the line ended the session (Ctrl-D) and handing back a large session's memory
            # outlasted the marker's wait. Counted by its exit status, as any session a line ends.
            hung = not pty.ended
            break
        last = todo[k - 1]
        detail = {"input": f"repl session {j}, lines {first + 1}-{k}", "last": repr(last[1])}
        if hung:
            detail["recovery"] = steps
        _end(tally, pty, detail, hung=hung)


def _saw(what: str, typed: bool, quiet: bool, pty: Pty, start: float) -> str:
    """One step of a hang's record: whether the keys went in, whether the output stopped, how far the marker got."""
    return (
        f"{what}: {'typed' if typed else 'not all typed'}, output {'stopped' if quiet else 'still running or ended'}, "
        f"{pty.synced if quiet else 'no marker typed'} ({time.monotonic() - start:.1f} s)"
    )


def _recover(pty: Pty, marker: int, steps: list[str]) -> bool:
    """Ctrl-C (after ending a paste a line may have opened), up to three times, each followed by a marker.
    `steps` records what each attempt saw, so a hang's record says which wait ran out."""
    for attempt in range(3):
        start = time.monotonic()
        typed = pty.write(b"\x1b[201~\x03", RECOVER_TIMEOUT)
        pty.quiet(1.0)
        typed = pty.write(b"\x03", RECOVER_TIMEOUT) and typed
        quiet = pty.quiet(RECOVER_TIMEOUT)
        synced = quiet and pty.sync(marker + attempt, RECOVER_TIMEOUT)
        steps.append(_saw(f"attempt {attempt + 1} (Ctrl-C)", typed, quiet, pty, start))
        if synced:
            return True
        if pty.ended:
            return False
    return False


def _end(tally: Tally, pty: Pty, detail: dict, *, hung: bool = False) -> None:
    """Close the session and count how it ended."""
    status = pty.close()
    problems = []
    if hung:
        problems.append("hangs")
    elif status is not None and status < 0:
        problems.append("crash signals")
    elif status not in (0, None):
        problems.append("other exit statuses")
    if pty.traceback:
        problems.append("tracebacks")
    with tally.lock:
        tally.runs += 1
        tally.exits[str(status)] += 1
        for what in problems:
            tally.fail(what, {**detail, "status": status, "screen": pty.log[-1500:]})
