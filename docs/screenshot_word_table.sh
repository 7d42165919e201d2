#!/bin/sh
# Write the demo's alliance -> outcome table to Word with export_table, render the .docx with
# LibreOffice (Debian's libreoffice-writer-nogui) and poppler's pdftoppm, and save the picture
# used in the README. Run `make demo` first. Usage: sh docs/screenshot_word_table.sh
set -e
python="${PYTHON:-.venv/bin/python}"
results="${RESULTS:-results}"
csv="$results/tables/alliance_to_outcome_apa.csv"
test -f "$csv" || { echo "run make demo first" >&2; exit 1; }
work=$(mktemp -d)
"$python" - "$csv" "$work/table2.docx" <<'PY'
import sys

import pandas as pd

import alliance_stats as als

apa = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
als.export_table(apa, sys.argv[2], caption="Table 2. Alliance Effects on PHQ-9 Scores at the Next Session",
                 note="Multilevel model of PHQ-9 at session t on the WAI-SR at t - 1, split into its within-patient, "
                      "between-patient and therapist parts (REML; Satterthwaite df). beta = standardized estimate; "
                      "CI = confidence interval.")
PY
soffice --headless --convert-to pdf --outdir "$work" "$work/table2.docx" >/dev/null 2>&1
pdftoppm -r 200 -png -f 1 -l 1 "$work/table2.pdf" "$work/page"
"$python" - "$work"/page*.png docs/word_table.png <<'PY'
import sys

from PIL import Image, ImageOps

im = Image.open(sys.argv[1]).convert("RGB")
x0, y0, x1, y1 = ImageOps.invert(im).getbbox()  # the ink on the page, with a margin
pad = 30
im.crop((max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, im.width), min(y1 + pad, im.height))).save(sys.argv[2], optimize=True)
print("wrote", sys.argv[2])
PY
rm -rf "$work"
