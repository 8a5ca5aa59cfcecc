"""Step 1: the optimised binary (build-release/, meson --buildtype=release), and which commit
it was built from."""

import os
import subprocess

from .common import BUILD, ROOT, die, log


def build():
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        log("meson setup build-release --buildtype=release")
        subprocess.run(["meson", "setup", BUILD, "--buildtype=release"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    log("ninja -C build-release tandem")
    p = subprocess.run(["ninja", "-C", BUILD, "tandem"], cwd=ROOT, capture_output=True,
                       text=True)
    if p.returncode != 0:
        die("the optimised build failed:\n" + p.stdout[-3000:] + p.stderr[-2000:])


def git_info():
    def run(*a):
        p = subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True)
        return p.stdout.strip()
    head = run("rev-parse", "--short", "HEAD")
    dirty = bool(run("status", "--porcelain", "--", "src", "meson.build"))
    return head + (" + uncommitted changes in src/" if dirty else "")
