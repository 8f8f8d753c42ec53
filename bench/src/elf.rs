//! Section sizes of an ELF64 little-endian binary, read from its section headers (what
//! `size -A` prints), so that binaries can be compared without binutils.

use std::path::Path;

/// A binary's loaded, read-only bytes (`size`'s "text": code and read-only data) and, of
/// them, the executable sections alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextSize {
    pub text: u64,
    pub code: u64,
}

const SHF_WRITE: u64 = 0x1;
const SHF_ALLOC: u64 = 0x2;
const SHF_EXECINSTR: u64 = 0x4;
const SHT_NOBITS: u32 = 8;

pub fn text_size(path: &Path) -> anyhow::Result<TextSize> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).ok_or_else(|| anyhow::anyhow!("{}: not an ELF64 LE binary", path.display()))
}

fn parse(b: &[u8]) -> Option<TextSize> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    // Magic, 64-bit class, little-endian.
    if b.get(0..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    let mut size = TextSize::default();
    for i in 0..shnum {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let (kind, flags, len) = (u32_at(h + 4)?, u64_at(h + 8)?, u64_at(h + 32)?);
        if flags & SHF_ALLOC == 0 || flags & SHF_WRITE != 0 || kind == SHT_NOBITS {
            continue;
        }
        size.text += len;
        if flags & SHF_EXECINSTR != 0 {
            size.code += len;
        }
    }
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_code_inside_its_text() {
        let me = std::env::current_exe().expect("current exe");
        let s = text_size(&me).expect("an ELF binary");
        assert!(s.code > 0 && s.code < s.text, "{s:?}");
    }

    #[test]
    fn not_elf_is_an_error() {
        assert_eq!(parse(b"#!/bin/sh\n"), None);
        assert_eq!(parse(b"\x7fELF\x02\x01"), None);
    }
}
