"""CPU pages per second from PDF to Gundam-mode input tensors: dsocr's path against the official script's.

Both pipelines run in the same process, one page at a time, with one torch thread, on a real multi-page PDF
at 144 dpi:

* dsocr: ``dsocr.documents.open_document(data, workers=1)`` renders in one PDFium worker process and
  ``dsocr.model.preprocess.prepare_image(page.image, "gundam")`` runs in this process (the product path);
* dsocr_kept_pool: the same with a ``RenderPool`` whose worker is already running, as the CLI and a server
  keep one, so the worker's start-up is not paid per document;
* official: what DeepSeek's ``run_dpsk_ocr_pdf.py`` does to each page: PyMuPDF renders at zoom 2.0 with
  ``alpha=False``, ``tobytes("png")``, PIL reopens the PNG, then ``tokenize_with_images`` preprocesses it
  (``dynamic_preprocess`` crops, ``ImageOps.pad`` global view, torchvision ``ToTensor`` + ``Normalize``
  per view, ``torch.stack``). torchvision is not a dependency, so ``to_tensor`` and ``normalize`` below
  repeat its operations with numpy and torch.

"Per core" divides pages by the CPU seconds of the whole process tree (this process and its render
workers), so work moved into a worker is not free. Without ``--pdf`` the pinned
document is downloaded once from the Debian archive (a LaTeX-typeset manual, US letter) and checked
against its SHA-256. Records the result as JSON.

    python benchmarks/render_preprocess.py [--pdf FILE] [--pages 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import statistics
import sys
import tarfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import PIL
import pymupdf
import pypdfium2
import torch
from _serving import machine
from PIL import Image, ImageOps

from dsocr.documents.rendering import RenderPool, open_document
from dsocr.model.preprocess import prepare_image

RESULTS = Path(__file__).parent / "results" / "render_preprocess.json"

#: The GLPK reference manual (177 pages, LaTeX: dense text, formulas, tables, code) from Debian's glpk-doc.
#: The second address is Debian's snapshot archive, for when the package has left the main pool.
PDF_SOURCE = {
    "urls": [
        "https://deb.debian.org/debian/pool/main/g/glpk/glpk-doc_5.0-1_all.deb",
        "https://snapshot.debian.org/archive/debian/20230101T000000Z/pool/main/g/glpk/glpk-doc_5.0-1_all.deb",
    ],
    "deb_sha256": "2ad3ce3e0efbf906e5874ba1e6fcc8477361e881890e4775f07c92a01c4156df",
    "member": "./usr/share/doc/glpk-doc/glpk.pdf",
    "sha256": "002d0328518a17b58919a2860b7f72d52594a73008f72c85f0dd70dfa138250f",
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dsocr-bench"

DPI = 144
MODE = "gundam"
# The official script's constants (config.py): Gundam with at most 6 tiles of 640, global view 1024.
BASE_SIZE, IMAGE_SIZE, MIN_CROPS, MAX_CROPS = 1024, 640, 2, 6
MEAN = STD = (0.5, 0.5, 0.5)


# --- the document ---------------------------------------------------------------------------------------


def pinned_pdf() -> bytes:
    """The pinned PDF, from the cache or downloaded, extracted from its .deb and checked."""
    path = CACHE / Path(PDF_SOURCE["member"]).name
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == PDF_SOURCE["sha256"]:
        return path.read_bytes()
    deb = _download(PDF_SOURCE["urls"], PDF_SOURCE["deb_sha256"])
    data = _deb_member(deb, PDF_SOURCE["member"])
    if hashlib.sha256(data).hexdigest() != PDF_SOURCE["sha256"]:
        raise SystemExit(f"{PDF_SOURCE['member']} in the package does not have the pinned SHA-256")
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _download(urls: list[str], sha256: str) -> bytes:
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except OSError as error:
            print(f"cannot download {url}: {error}", file=sys.stderr)
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
        print(f"{url} does not have the pinned SHA-256", file=sys.stderr)
    raise SystemExit("could not download the pinned PDF; pass --pdf FILE to use another")


def _deb_member(deb: bytes, member: str) -> bytes:
    """One file from a .deb: an ``ar`` archive whose ``data.tar.*`` member holds the installed files."""
    if not deb.startswith(b"!<arch>\n"):
        raise SystemExit("the download is not a Debian package")
    offset = 8
    while offset + 60 <= len(deb):
        header = deb[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        body = deb[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                return tar.extractfile(member).read()
        offset += 60 + size + size % 2  # members start on even offsets
    raise SystemExit("the Debian package has no data.tar member")


# --- the official preprocessing (DeepSeek-OCR-vllm process/image_process.py, Gundam) -----------------------


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=MIN_CROPS, max_num=MAX_CROPS, image_size=IMAGE_SIZE):
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height
    target_ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])
    target_aspect_ratio = find_closest_aspect_ratio(aspect_ratio, target_ratios, orig_width, orig_height, image_size)
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size,
        )
        processed_images.append(resized_img.crop(box))
    return processed_images, target_aspect_ratio


def to_tensor(pic: Image.Image) -> torch.Tensor:
    """torchvision ``transforms.functional.to_tensor`` for an 8-bit PIL image, step by step."""
    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
    img = img.permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


def normalize(tensor: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """torchvision ``transforms.functional.normalize`` with ``inplace=False``, as ``T.Normalize`` calls it."""
    tensor = tensor.clone()
    mean = torch.as_tensor(mean, dtype=tensor.dtype).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=tensor.dtype).view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


def image_transform(pil_img: Image.Image) -> torch.Tensor:
    return normalize(to_tensor(pil_img))


def official_gundam(image: Image.Image) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The image part of ``tokenize_with_images(images=[image], cropping=True)``: pixel_values, images_crop."""
    images_crop_raw = []
    if image.size[0] <= 640 and image.size[1] <= 640:
        crop_ratio = (1, 1)
    else:
        images_crop_raw, crop_ratio = dynamic_preprocess(image, image_size=IMAGE_SIZE)
    global_view = ImageOps.pad(image, (BASE_SIZE, BASE_SIZE), color=tuple(int(x * 255) for x in MEAN))
    images_list = [image_transform(global_view)]
    images_crop_list = []
    if crop_ratio[0] > 1 or crop_ratio[1] > 1:
        images_crop_list = [image_transform(crop) for crop in images_crop_raw]
    pixel_values = torch.stack(images_list, dim=0)
    if images_crop_list:
        images_crop = torch.stack(images_crop_list, dim=0).unsqueeze(0)
    else:
        images_crop = torch.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE)).unsqueeze(0)
    return pixel_values, images_crop, tuple(crop_ratio)


# --- measurement ----------------------------------------------------------------------------------------


def process_tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process, its waited-for children and every live descendant.

    RUSAGE_CHILDREN counts only children that have exited and been waited for; a kept render worker is alive.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    ticks = os.sysconf("SC_CLK_TCK")
    pending = list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    return total


def run_dsocr(data: bytes, pages: int, pool: RenderPool | None = None) -> dict:
    """``open_document`` with one worker, started for this document; or ``pool``, whose worker is running."""
    stage = Counter()
    shapes = []
    selected = f"1-{pages}"
    cpu_start, main_start, wall_start = process_tree_cpu_seconds(), time.process_time(), time.perf_counter()
    opened = open_document(data, pages=selected, workers=1) if pool is None else pool.open(data, pages=selected)
    with opened as document:
        for page in document:
            if page.error is not None:
                raise SystemExit(f"dsocr could not render page {page.index + 1}: {page.error.message}")
            started = time.process_time()
            prepared = prepare_image(page.image, MODE)
            shapes.append((tuple(prepared.global_view.shape), tuple(prepared.tiles.shape), prepared.grid))
            del prepared, page  # freeing the tensors is part of the stage, in both pipelines
            stage["preprocess"] += time.process_time() - started
    # Without a pool of the caller's, the worker has exited and been reaped here, so its CPU time is counted;
    # a kept worker is alive and counted as a descendant.
    wall = time.perf_counter() - wall_start
    main = time.process_time() - main_start
    cpu = process_tree_cpu_seconds() - cpu_start
    stages = {
        "render worker": cpu - main,  # everything outside this process: worker start-up, PDFium, pickling
        "receive pages": main - stage["preprocess"],  # waiting is not CPU; unpickling the image is
        "preprocess": stage["preprocess"],
    }
    return {"cpu": cpu, "wall": wall, "stages": stages, "shapes": shapes}


def run_official(data: bytes, pages: int) -> dict:
    stage = Counter()
    shapes = []
    cpu_start, wall_start = process_tree_cpu_seconds(), time.perf_counter()
    document = pymupdf.open(stream=data, filetype="pdf")
    matrix = pymupdf.Matrix(DPI / 72, DPI / 72)
    for index in range(pages):
        t0 = time.process_time()
        pixmap = document[index].get_pixmap(matrix=matrix, alpha=False)
        t1 = time.process_time()
        png = pixmap.tobytes("png")
        t2 = time.process_time()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        t3 = time.process_time()
        pixel_values, images_crop, crop_ratio = official_gundam(image)
        tiles = tuple(images_crop.shape[1:]) if crop_ratio != (1, 1) else (0, 3, IMAGE_SIZE, IMAGE_SIZE)
        shapes.append((tuple(pixel_values.shape[1:]), tiles, crop_ratio))
        del pixel_values, images_crop, image, png, pixmap
        t4 = time.process_time()
        stage["render"] += t1 - t0
        stage["PNG encode"] += t2 - t1
        stage["PNG decode"] += t3 - t2
        stage["preprocess"] += t4 - t3
    document.close()
    wall = time.perf_counter() - wall_start
    cpu = process_tree_cpu_seconds() - cpu_start
    return {"cpu": cpu, "wall": wall, "stages": dict(stage), "shapes": shapes}


def compare_outputs(data: bytes, pages: int) -> dict:
    """Untimed: the two global views page by page, and both preprocessings on the very same image."""
    diffs, same_image_max = [], 0.0
    document = pymupdf.open(stream=data, filetype="pdf")
    matrix = pymupdf.Matrix(DPI / 72, DPI / 72)
    with open_document(data, pages=f"1-{pages}", workers=1) as rendered:
        for page in rendered:
            png = document[page.index].get_pixmap(matrix=matrix, alpha=False).tobytes("png")
            image = Image.open(io.BytesIO(png)).convert("RGB")
            pixel_values, images_crop, _ = official_gundam(image)
            ours = prepare_image(page.image, MODE)
            if ours.global_view.shape == pixel_values[0].shape:
                diffs.append((ours.global_view - pixel_values[0]).abs().mean().item())
            same = prepare_image(image, MODE)
            same_image_max = max(
                same_image_max,
                (same.global_view - pixel_values[0]).abs().max().item(),
                (same.tiles - images_crop[0]).abs().max().item() if same.grid != (1, 1) else 0.0,
            )
    document.close()
    return {
        "global_view_mean_abs_diff": round(statistics.fmean(diffs), 5) if diffs else None,
        "same_image_max_abs_diff": same_image_max,
    }


def versions() -> dict:
    return {
        "pypdfium2": str(pypdfium2.version.PYPDFIUM_INFO),
        "pdfium": str(pypdfium2.version.PDFIUM_INFO),
        "pymupdf": pymupdf.__version__,
        "mupdf": pymupdf.mupdf_version,
        "pillow": PIL.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, help="a PDF to use instead of the pinned one")
    parser.add_argument("--pages", type=int, default=30, help="use the first N pages (default 30)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each pipeline; the median is kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = args.pdf.read_bytes() if args.pdf else pinned_pdf()
    with pymupdf.open(stream=data, filetype="pdf") as document:
        page_count = document.page_count
    pages = min(args.pages, page_count)

    with RenderPool(workers=1) as pool:
        pipelines = {
            "dsocr": run_dsocr,
            "dsocr_kept_pool": lambda data, pages: run_dsocr(data, pages, pool),
            "official": run_official,
        }
        for run in pipelines.values():  # warm-up: starts the kept worker, loads fonts
            run(data, min(pages, 3))
        runs = {name: [] for name in pipelines}
        for _ in range(args.repeats):
            for name, run in pipelines.items():  # interleaved, so drift in the machine hits all alike
                runs[name].append(run(data, pages))

    shapes = {name: measured[0]["shapes"] for name, measured in runs.items()}
    if not shapes["dsocr"] == shapes["dsocr_kept_pool"] == shapes["official"]:
        raise SystemExit(f"the pipelines disagree on tensor shapes: {shapes}")
    grids = Counter("x".join(map(str, grid)) for _, _, grid in shapes["dsocr"])

    results = {}
    for name, measured in runs.items():
        cpu = statistics.median(run["cpu"] for run in measured)
        wall = statistics.median(run["wall"] for run in measured)
        results[name] = {
            "pages_per_cpu_second": round(pages / cpu, 2),
            "pages_per_wall_second": round(pages / wall, 2),
            "cpu_ms_per_page": round(1000 * cpu / pages, 1),
            "wall_ms_per_page": round(1000 * wall / pages, 1),
            "cpu_ms_per_page_each_run": [round(1000 * run["cpu"] / pages, 1) for run in measured],
            "cpu_ms_per_page_by_stage": {
                stage: round(1000 * statistics.median(run["stages"][stage] for run in measured) / pages, 1)
                for stage in measured[0]["stages"]
            },
        }

    def speedup(name: str, key: str) -> float:
        return round(results[name][key] / results["official"][key], 2)

    command = f"python benchmarks/render_preprocess.py --pages {args.pages} --repeats {args.repeats}"
    result = {
        "command": command + (f" --pdf {args.pdf}" if args.pdf else ""),
        "machine": machine(),
        "versions": versions(),
        "pdf": {
            "source": PDF_SOURCE["urls"][0] if args.pdf is None else None,
            "member": PDF_SOURCE["member"] if args.pdf is None else str(args.pdf),
            "sha256": hashlib.sha256(data).hexdigest(),
            "pages_in_file": page_count,
            "pages_used": pages,
        },
        "dpi": DPI,
        "mode": MODE,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "grids": dict(grids),
        "pipelines": results,
        "speedup_per_core": speedup("dsocr", "pages_per_cpu_second"),
        "speedup_wall": speedup("dsocr", "pages_per_wall_second"),
        "speedup_per_core_kept_pool": speedup("dsocr_kept_pool", "pages_per_cpu_second"),
        "speedup_wall_kept_pool": speedup("dsocr_kept_pool", "pages_per_wall_second"),
        "check": compare_outputs(data, pages),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{pages} pages, {MODE} at {DPI} dpi, grids {dict(grids)}, median of {args.repeats}")
    print(f"{'pipeline':<16} {'pages/CPU-s':>11} {'pages/wall-s':>12} {'CPU ms/page':>11}  CPU ms/page by stage")
    for name, numbers in results.items():
        stages = ", ".join(f"{stage} {ms}" for stage, ms in numbers["cpu_ms_per_page_by_stage"].items())
        print(
            f"{name:<16} {numbers['pages_per_cpu_second']:>11} {numbers['pages_per_wall_second']:>12} "
            f"{numbers['cpu_ms_per_page']:>11}  {stages}"
        )
    print(
        f"dsocr / official: {result['speedup_per_core']}x per core, {result['speedup_wall']}x wall; "
        f"with a kept pool {result['speedup_per_core_kept_pool']}x per core, {result['speedup_wall_kept_pool']}x wall"
    )
    print(f"check: {result['check']}")


if __name__ == "__main__":
    main()
