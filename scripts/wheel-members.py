#!/usr/bin/env python3
"""Unpack some members of a remote wheel (a zip) without downloading it:
HTTP range requests read the central directory, then only the members
asked for. zipfile checks each member's CRC-32.

usage: wheel-members.py URL DEST MEMBER...   (MEMBER: a name or fnmatch glob)
"""
import fnmatch
import io
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile

CHUNK = 8 << 20
TRIES = 6


def retrying(what, fn):
    """fn(), tried again after a network error (a CI runner's link drops
    now and then): 6 tries, 2 to 32 s apart."""
    for i in range(TRIES):
        try:
            return fn()
        except (urllib.error.URLError, OSError, ValueError) as e:
            if i == TRIES - 1:
                sys.exit(f"wheel-members: {what}: {e}")
            print(f"wheel-members: {what}: {e}; trying again", file=sys.stderr)
            time.sleep(2 << i)


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through Range requests."""

    def __init__(self, url):
        self.url, self.pos, self.buf_at, self.buf = url, 0, 0, b""
        self.fetched = 0

        def head():
            req = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.headers.get("Accept-Ranges"), int(r.headers["Content-Length"])

        ranges, self.size = retrying(url, head)
        if ranges != "bytes":
            sys.exit(f"wheel-members: {url}: the server takes no range requests")

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, off, whence=0):
        self.pos = {0: off, 1: self.pos + off, 2: self.size + off}[whence]
        return self.pos

    def _get(self, start, end):
        def get():
            req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
            with urllib.request.urlopen(req, timeout=300) as r:
                if r.status != 206:
                    sys.exit(f"wheel-members: {self.url}: range request answered {r.status}")
                data = r.read()
            if len(data) != end - start:
                raise ValueError(f"bytes {start}-{end - 1}: got {len(data)} bytes")
            return data

        data = retrying(f"{self.url} bytes {start}-{end - 1}", get)
        self.fetched += len(data)
        return data

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        out = bytearray()
        while n > 0:
            at = self.pos - self.buf_at
            if 0 <= at < len(self.buf):
                # What the buffer holds is served from it; only the rest
                # is fetched (each byte of the wheel is fetched once when
                # read in order).
                take = self.buf[at : at + n]
            else:
                # Read ahead: zipfile asks for headers in small pieces.
                self.buf_at = self.pos
                self.buf = self._get(self.pos, min(self.size, self.pos + max(n, CHUNK)))
                take = self.buf[:n]
            out += take
            self.pos += len(take)
            n -= len(take)
        return bytes(out)

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    url, dest, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
    f = RangeFile(url)
    with zipfile.ZipFile(f) as z:
        names = z.namelist()
        for pat in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                sys.exit(f"wheel-members: {url}: no member {pat}")
            for n in hits:
                # Through a temporary name: a run cut short leaves no
                # partial member that a later run would take as unpacked.
                target = os.path.join(dest, n)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                part = target + ".part"
                with z.open(n) as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                os.chmod(part, 0o755)
                os.replace(part, target)
    print(f"wheel-members: {os.path.basename(url)}: {f.fetched} of {f.size} bytes fetched")


if __name__ == "__main__":
    main()
