#!/usr/bin/env python3
"""Convert a CDNOW purchase file into the order CSV read by the replay example.

Input (whitespace-separated, either layout, detected from the first data line):

  master: customer_id date number_of_cds dollar_value          (4 columns, optional header line)
  sample: master_id sample_id date number_of_cds dollar_value  (5 columns, no header)

Output (RFC 4180 CSV, LF line endings):

  member_id,order_id,placed_at,amount,channel
  00001,00001-1,1997-01-01T12:00:00Z,11.77,web

- member_id: the customer id of the master data set (leading zeros kept), in both layouts;
- order_id:  ``<member_id>-<n>`` where n is the 1-based index of the data row in the input file
  (header excluded), so ids are unique and stable;
- placed_at: noon UTC of the purchase date, RFC 3339;
- amount:    the dollar value with two decimals, exactly as given (no float rounding);
- channel:   ``web``.

Usage:
  python3 scripts/cdnow_to_csv.py INPUT [-o OUTPUT]       (OUTPUT defaults to stdout)

Python 3 standard library only.
"""

import argparse
import csv
import datetime
import os
import sys
from decimal import Decimal, InvalidOperation

HEADER = ["member_id", "order_id", "placed_at", "amount", "channel"]
CENT = Decimal("0.01")


class FormatError(Exception):
    pass


def detect(fields):
    """Return 'master' or 'sample' from the column count of a data line."""
    if len(fields) == 4:
        return "master"
    if len(fields) == 5:
        return "sample"
    raise FormatError(f"expected 4 (master) or 5 (sample) columns, got {len(fields)}")


def is_header(fields):
    # A data line starts with a numeric customer id; the master header starts with "customer_id".
    return not fields[0].isdigit()


def convert_row(fields, layout, index):
    if layout == "master":
        member, date, _cds, value = fields
    else:
        member, _sample_id, date, _cds, value = fields
    try:
        day = datetime.datetime.strptime(date, "%Y%m%d").date()
    except ValueError:
        raise FormatError(f"bad date {date!r} (expected YYYYMMDD)") from None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise FormatError(f"bad dollar value {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise FormatError(f"bad dollar value {value!r}")
    if amount != amount.quantize(CENT):
        raise FormatError(f"dollar value {value!r} has more than two decimals")
    placed_at = f"{day.isoformat()}T12:00:00Z"
    return [member, f"{member}-{index}", placed_at, str(amount.quantize(CENT)), "web"]


def convert(lines, out):
    """Convert an iterable of input lines; returns (layout, rows written)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    layout = None
    index = 0
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if layout is None:
            if is_header(fields):
                continue
            layout = detect(fields)
        elif len(fields) != (4 if layout == "master" else 5):
            raise FormatError(f"line {lineno}: expected the {layout} layout, got {len(fields)} columns")
        index += 1
        try:
            writer.writerow(convert_row(fields, layout, index))
        except FormatError as e:
            raise FormatError(f"line {lineno}: {e}") from None
    if layout is None:
        raise FormatError("no data lines")
    return layout, index


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert CDNOW_master.txt or CDNOW_sample.txt to an order CSV.")
    parser.add_argument("input", help="CDNOW file (master or sample layout, auto-detected)")
    parser.add_argument("-o", "--output", help="CSV file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        with open(args.input, encoding="ascii", newline="") as src:
            if args.output:
                # Write next to the target and rename, so a failed run leaves no partial CSV.
                tmp = args.output + ".part"
                try:
                    with open(tmp, "w", encoding="utf-8", newline="") as dst:
                        layout, n = convert(src, dst)
                    os.replace(tmp, args.output)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
            else:
                layout, n = convert(src, sys.stdout)
    except (OSError, UnicodeDecodeError, FormatError) as e:
        print(f"cdnow_to_csv: {args.input}: {e}", file=sys.stderr)
        return 1
    print(f"cdnow_to_csv: {n} orders ({layout} layout) from {args.input}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
