"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe, standard library only) for the line
view's browser test.

    browser.py URL --until JS --eval JS [--dom FILE] [--screenshot FILE] [--size 1280x800] [--timeout SECS]

Loads URL, waits until the expression --until is true in the page (polled every 100 ms), then prints as JSON the
value of --eval (JSON-serialisable) and how long the wait took; --dom saves the rendered DOM, --screenshot a PNG of
the viewport. Everything ends within --timeout, Chromium included.

Why not --dump-dom with --virtual-time-budget: the page keeps a server-sent-events stream open, and Chromium's
virtual time never advances while a request is pending, so such a run never ends; --dump-dom alone dumps at the load
event, before the first event of the stream has arrived.
"""
import argparse
import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import time

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class Cdp:
    """One DevTools session over Chromium's pipe: it reads commands on its fd 3 and answers on fd 4, each message
    JSON ended by a NUL byte."""

    def __init__(self, write_fd, read_fd, deadline):
        self.w, self.r, self.deadline = write_fd, read_fd, deadline
        self.buf = b""
        self.last_id = 0

    def _message(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 16)
                if not chunk:
                    raise EOFError("Chromium closed the DevTools pipe")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None):
        self.last_id += 1
        msg = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            answer = self._message()
            if answer.get("id") == self.last_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, session, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")


def launch(profile):
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def pipes_on_3_and_4():
        # Moved above 10 first, so that neither lands on the other's target.
        a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(
        ["chromium", *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pipes_on_3_and_4,
        pass_fds=(3, 4),
    )
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    return proc, to_chrome_w, from_chrome_r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--until", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--dom")
    ap.add_argument("--screenshot")
    ap.add_argument("--size", default="1280x800")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory() as profile:
        proc, w, r = launch(profile)
        try:
            cdp = Cdp(w, r, deadline)
            page = next(t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            session = cdp.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            cdp.call("Page.navigate", {"url": args.url}, session)
            started, last = time.monotonic(), None
            while True:
                try:
                    # Until the page has loaded, the expression may throw (the old document is still there).
                    if cdp.evaluate(session, args.until):
                        break
                    last = "false"
                except RuntimeError as e:
                    last = str(e)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args.until!r} never became true (last: {last})")
                time.sleep(0.1)
            waited_ms = int((time.monotonic() - started) * 1000)
            value = cdp.evaluate(session, args.eval)
            if args.dom:
                with open(args.dom, "w") as f:
                    f.write(cdp.evaluate(session, "document.documentElement.outerHTML"))
            if args.screenshot:
                shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session)
                with open(args.screenshot, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
            json.dump({"value": value, "waited_ms": waited_ms}, sys.stdout)
        finally:
            try:
                os.write(w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
