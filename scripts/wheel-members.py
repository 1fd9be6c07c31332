#!/usr/bin/env python3
"""Unpack some members of a remote wheel (a zip) without downloading it:
HTTP range requests read the central directory, then only the members
asked for. zipfile checks each member's CRC-32.

usage: wheel-members.py URL DEST MEMBER...   (MEMBER: a name or fnmatch glob)
"""
import fnmatch
import io
import os
import sys
import urllib.request
import zipfile

CHUNK = 8 << 20


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through Range requests."""

    def __init__(self, url):
        self.url, self.pos, self.buf_at, self.buf = url, 0, 0, b""
        self.fetched = 0
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=120) as r:
            if r.headers.get("Accept-Ranges") != "bytes":
                sys.exit(f"wheel-members: {url}: the server takes no range requests")
            self.size = int(r.headers["Content-Length"])

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
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
        with urllib.request.urlopen(req, timeout=300) as r:
            if r.status != 206:
                sys.exit(f"wheel-members: {self.url}: range request answered {r.status}")
            data = r.read()
        self.fetched += len(data)
        return data

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        if n <= 0:
            return b""
        lo, hi = self.pos - self.buf_at, self.pos - self.buf_at + n
        if not (0 <= lo and hi <= len(self.buf)):
            # Read ahead: zipfile asks for headers in small pieces.
            self.buf_at = self.pos
            self.buf = self._get(self.pos, min(self.size, self.pos + max(n, CHUNK)))
            lo, hi = 0, n
        self.pos += n
        return self.buf[lo:hi]


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
                z.extract(n, dest)
    print(f"wheel-members: {os.path.basename(url)}: {f.fetched} of {f.size} bytes fetched")


if __name__ == "__main__":
    main()
