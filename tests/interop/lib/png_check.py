#!/usr/bin/env python3
"""Checks a PNG screenshot is not blank, with the standard library only (no Pillow).

    png_check.py FILE.png [MIN_INK_PERMILLE] [MIN_COLOURS]

Decodes the image (8-bit RGB or RGBA, not interlaced: what Chromium writes), then counts the
pixels that are not near-white and the distinct colours. A page whose charts rendered has text,
lines and fills: a few percent of ink and dozens of colours. A blank or error page has almost
none. Prints `WIDTHxHEIGHT ink=N‰ colours=M` and exits 1 if either is under its minimum.
"""

import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour})")
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def main():
    path = sys.argv[1]
    min_ink = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    min_colours = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    width, height, channels, rows = decode(path)
    ink, colours = 0, set()
    for row in rows:
        for x in range(0, width * channels, channels):
            r, g, b = row[x], row[x + 1], row[x + 2]
            colours.add((r, g, b))
            if r < 235 or g < 235 or b < 235:
                ink += 1
    permille = ink * 1000 / (width * height)
    print(f"{width}x{height} ink={permille:.1f}‰ colours={len(colours)}")
    sys.exit(0 if permille >= min_ink and len(colours) >= min_colours else 1)


if __name__ == "__main__":
    main()
