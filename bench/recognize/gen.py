#!/usr/bin/env python3
"""gen.py N DIR — N product photos DIR/p<i>.ppm (400x600) for the local
visual-search bench: a garment of a random colour, size and place on a
light background of a random tint, with zero to two bands of another
colour across it (stripes, a belt). Seeded: the same N gives the same
catalog. Python stdlib only; vips turns the PPMs into JPEGs."""
import os
import random
import sys


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rnd = random.Random(20261202)
    W, H = 400, 600
    for i in range(n):
        bg = [rnd.randint(205, 250) for _ in range(3)]
        col = [rnd.randint(0, 255) for _ in range(3)]
        gw, gh = rnd.randint(150, 300), rnd.randint(250, 480)
        gx, gy = rnd.randint(10, W - gw - 10), rnd.randint(10, H - gh - 10)
        bands = []
        for _ in range(rnd.randint(0, 2)):
            bands.append((rnd.randint(gy, gy + gh - 20), rnd.randint(10, 60),
                          [rnd.randint(0, 255) for _ in range(3)]))
        row_bg = bytes(bg) * W
        rows = []
        for y in range(H):
            if gy <= y < gy + gh:
                c = col
                for (by, bh, bc) in bands:
                    if by <= y < by + bh:
                        c = bc
                rows.append(row_bg[:gx * 3] + bytes(c) * gw + row_bg[(gx + gw) * 3:])
            else:
                rows.append(row_bg)
        with open(os.path.join(out, "p%d.ppm" % i), "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (W, H))
            f.write(b"".join(rows))


if __name__ == "__main__":
    main()
