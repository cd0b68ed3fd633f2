"""Reading attached forms: time for a 20-page PDF form, and how hostile documents are cut off.

Each case runs `intake.core.documents.read` in a fresh child process under an address-space limit
of 256 MB (RLIMIT_AS) and prints status, wall time and peak RSS. Targets (issue 12): a 20-page
form in < 300 ms; a hostile PDF cut off within 2 s and 256 MB.

    .venv/bin/python bench/bench_documents.py
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.corpus.forms import text_pdf  # noqa: E402


def flate_bomb_pdf(mb: int = 2048) -> bytes:
    """One page whose content stream inflates to `mb` MB of spaces."""
    comp = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    data = b"".join(comp.compress(chunk) for _ in range(mb)) + comp.flush()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"]
    return _pdf(objs)


def many_pages_pdf(n: int = 100_000) -> bytes:
    """A page tree that names one page object `n` times."""
    kids = b" ".join(b"3 0 R" for _ in range(n))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    return _pdf(objs)


def loop_pdf() -> bytes:
    """A page tree that contains itself."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    return _pdf(objs)


def _pdf(objs: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + o + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def docx_bomb(mb: int = 1024) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w") as f:
            for _ in range(mb):
                f.write(b" " * (1 << 20))
    return buf.getvalue()


def child(path: str, kind: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))
    import docx  # noqa: F401 - imported once per worker, not per document
    import pypdf  # noqa: F401

    from intake.core.documents import read

    data = Path(path).read_bytes()
    t0 = time.perf_counter()
    doc = read(Path(path).name, kind, data)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if kind == "pdf" and doc.status == "read":
        doc.status += f" ({len(pypdf.PdfReader(io.BytesIO(data)).pages)} p.)"
    print(json.dumps({"status": doc.status, "ms": round(took * 1000), "peak_mb": round(peak), "chars": len(doc.text)}))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return 0
    lines = ["Borgers navn: Karen Lund", "Cpr.nr.: 120385-1233", "Ønsket undersøgelse: Psykiatrisk speciallægeerklæring",
             "Problemstilling: Det ønskes belyst, om borgeren har en varig psykisk lidelse."] + [
             f"Side tekst linje {i}: sagsakter og journaloplysninger fra egen læge og sygehus." for i in range(40 * 25)]
    cases = [("20-page text form", "pdf", text_pdf("Henvisning", lines, doc_id="bench20")),
             ("flate bomb (2 GB of spaces)", "pdf", flate_bomb_pdf()),
             ("page tree naming one page 100,000 times", "pdf", many_pages_pdf()),
             ("page tree that contains itself", "pdf", loop_pdf()),
             ("truncated PDF", "pdf", text_pdf("x", lines[:10], doc_id="t")[:300]),
             ("DOCX zip bomb (1 GB document.xml)", "docx", docx_bomb())]
    import tempfile

    print(f"{'document':<42}{'status':<12}{'ms':>7}{'peak MB':>9}")
    for label, kind, data in cases:
        with tempfile.NamedTemporaryFile(suffix="." + kind) as f:
            f.write(data)
            f.flush()
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, __file__, "--child", f.name, kind], capture_output=True, text=True, timeout=120)
            wall = (time.perf_counter() - t0) * 1000
            try:
                d = json.loads(p.stdout.strip().splitlines()[-1])
            except Exception:
                d = {"status": f"child died ({p.returncode})", "ms": round(wall), "peak_mb": "-"}
            print(f"{label:<42}{d['status']:<12}{d['ms']:>7}{d['peak_mb']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
