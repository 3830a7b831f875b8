"""``python -m nanosam2.qat`` moved: QAT is ``python -m nanosam2.train --qat`` (the entry point lives above the
QAT code it runs)."""

import sys

if __name__ == "__main__":
    print("error: QAT is now `python -m nanosam2.train --qat --checkpoint STUDENT.pth ...` (--qat --help)",
          file=sys.stderr)
    raise SystemExit(2)
