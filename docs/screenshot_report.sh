#!/bin/sh
# Render results/report.html in headless Chromium (Debian's `chromium` package) and save the
# picture used in the README: the report's title and contents, then its alliance-outcome
# section. Run `make demo` first. Usage: sh docs/screenshot_report.sh
set -e
report="$(pwd)/results/report.html"
test -f "$report" || { echo "run make demo first" >&2; exit 1; }
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1000,9000 \
  --screenshot="$profile/full.png" "file://$report" 2>/dev/null
.venv/bin/python - "$profile/full.png" docs/report.png <<'PY'
import sys

import numpy as np
from PIL import Image

im = Image.open(sys.argv[1]).convert("RGB")
a = np.asarray(im).astype(int)
# section headings are underlined by a long #ccc rule; the 5th is "Alliance -> outcome"
rules = np.where((np.abs(a - 204).sum(axis=2) < 12).sum(axis=1) > 700)[0]
top = im.crop((0, 0, im.width, rules[0] - 60))
sec = im.crop((0, rules[4] - 50, im.width, rules[4] + 1250))
out = Image.new("RGB", (im.width, top.height + sec.height + 12), "white")
out.paste(top, (0, 0))
out.paste(sec, (0, top.height + 12))
out = out.resize((800, round(out.height * 800 / out.width)), Image.LANCZOS)
out.save(sys.argv[2], optimize=True)
print("wrote", sys.argv[2], out.size)
PY
rm -rf "$profile"
