#!/usr/bin/env python3
"""Every CUDA object of the CUDA backend's library holds machine code (an
ELF cubin, not only PTX) for every architecture the build asks for, so a
GPU of each runs the kernels without a JIT step and a .cu that stopped
compiling for one of them cannot go unseen. What cuobjdump --list-elf
shows, read here from the objects themselves (the toolkit we build with
ships no cuobjdump):

  a static library (ar archive) of ELF objects, or one shared object; in
  each, the section
  .nv_fatbin holds fat binaries: a 16-byte header (magic 0xBA55ED50,
  version, header size, size of the entries), then entries, each with a
  header of its own (kind 1 = PTX, 2 = ELF; header size; payload size; the
  architecture as e.g. 80 for sm_80) and its payload (zstd-compressed or
  not: only the headers are read).

Usage: check_cuda_arch.py LIBRARY ARCHS   (ARCHS: CMake's list, "80;90")
Exit 77 when LIBRARY is "none" (a build without the CUDA backend)."""
import re
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND_NAMES = {1: "ptx", 2: "elf"}


def archive_members(data):
    """(name, bytes) of each member of a System V / GNU ar archive."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos, names = 8, b""
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        name, size = hdr[0:16].decode().strip(), int(hdr[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name == "//":  # the long-name table
            names = body
            continue
        if name in ("/", "/SYM64/"):  # symbol tables
            continue
        if name.startswith("/") and name[1:].isdigit():
            off = int(name[1:])
            name = names[off:names.index(b"\n", off)].decode()
        yield name.rstrip("/"), body


def elf_section(obj, wanted):
    """The bytes of section `wanted` of a 64-bit little-endian ELF, or None."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF object")
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)

    def header(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", obj, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = header(shstrndx)
    for i in range(shnum):
        name, off, size = header(i)
        end = obj.index(b"\0", stroff + name)
        if obj[stroff + name:end].decode() == wanted:
            return obj[off:off + size]
    return None


def fatbin_entries(sec):
    """(kind, arch) of every entry of every fat binary in a .nv_fatbin."""
    out, pos = [], 0
    while pos + 16 <= len(sec):
        magic, _version, hsize, fsize = struct.unpack_from("<IHHQ", sec, pos)
        if magic != FATBIN_MAGIC:
            if magic == 0:  # alignment padding between fat binaries
                pos += 8
                continue
            raise ValueError(f"bad fat binary magic {magic:#x} at {pos}")
        epos, end = pos + hsize, pos + hsize + fsize
        while epos + 32 <= end:
            kind, _, ehsize, psize = struct.unpack_from("<HHIQ", sec, epos)
            arch, = struct.unpack_from("<I", sec, epos + 28)
            out.append((KIND_NAMES.get(kind, f"kind{kind}"), arch))
            epos += ehsize + psize
        pos = end
    return out


def main():
    lib, archs = sys.argv[1], sys.argv[2]
    if lib == "none":
        print("skip: this build has no CUDA backend (LT_CUDA=OFF or no nvcc)")
        return 77
    want = sorted({int(m) for m in re.findall(r"\d+", archs)})
    if not want:
        print(f"FAIL no architecture in {archs!r}")
        return 1
    fail, seen = 0, 0
    with open(lib, "rb") as f:
        data = f.read()
    # a static library, or one shared object (the boundaries build)
    objects = [(lib, data)] if data.startswith(b"\x7fELF") else archive_members(data)
    for name, obj in objects:
        sec = elf_section(obj, ".nv_fatbin")
        if sec is None:
            continue
        seen += 1
        entries = fatbin_entries(sec)
        elf = sorted({a for k, a in entries if k == "elf"})
        listing = ", ".join(f"{k} sm_{a}" for k, a in sorted(set(entries)))
        missing = [a for a in want if a not in elf]
        if missing:
            print(f"FAIL {name}: no sm_{', sm_'.join(map(str, missing))} machine code (has: {listing})")
            fail = 1
        else:
            print(f"ok   {name}: {listing}")
    if not seen:
        print(f"FAIL {lib}: no object holds device code (.nv_fatbin)")
        fail = 1
    return fail


if __name__ == "__main__":
    sys.exit(main())
