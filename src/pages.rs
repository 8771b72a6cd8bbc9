//! Resident pages that are exact copies of files: dropping them from the process's resident
//! set. Starting ONNX Runtime and building a session run code that never runs again (operator
//! schemas, graph rewrites, the command line's parsing): about 12 MB of the runtime's code
//! pages, 4 MB of hark's own and the read-only data beside them, which would otherwise stay
//! in a daemon's resident set. A page dropped comes back from the page cache on its next
//! access (a minor fault); the file stays in the page cache, where the kernel can reclaim it.

/// Drops the resident pages of a read-only file mapping: they come back from the page cache
/// on their next access.
pub fn release_mapped(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is a private read-only file mapping that nothing writes, so every page
    // dropped is an exact copy of the file.
    unsafe {
        libc::madvise(
            bytes.as_ptr() as *mut libc::c_void,
            bytes.len(),
            libc::MADV_DONTNEED,
        );
    }
}

/// Drops the resident pages of every read-only or read-and-execute mapping of a file (code,
/// constants, mapped models) that holds no private copy of a page. A mapping with one (a
/// relocated table, a debugger's breakpoint) is left alone, so every page dropped is an exact
/// copy of the file: nothing is lost.
pub fn release_file_pages() {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("HARK_NOREL").is_some() {
            return;
        }
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        for range in clean_file_mappings(&smaps) {
            // SAFETY: a private, unwritable mapping of a file without a private page: each
            // page dropped is read again from the file.
            unsafe {
                libc::madvise(
                    range.start as *mut libc::c_void,
                    range.end - range.start,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

/// The private read-only (`r--p`) and read-and-execute (`r-xp`) mappings of files in a
/// `/proc/<pid>/smaps` text whose `Anonymous:` size is 0 kB.
fn clean_file_mappings(smaps: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                current = None;
                continue;
            };
            let perms = f.next().unwrap_or("");
            // offset, device, inode, then the path ("" or "[heap]" for no file).
            let path = f.nth(3).unwrap_or("");
            let readable = perms == "r-xp" || perms == "r--p";
            current = (readable && path.starts_with('/')).then_some(a..b);
        } else if first == "Anonymous:" {
            if let Some(r) = current.take() {
                if f.next() == Some("0") {
                    out.push(r);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_clean_file_mappings_and_leaves_private_pages_alone() {
        let smaps = "\
7f14408dd000-7f144235f000 r-xp 000dd000 fd:01 123 /x/libonnxruntime.so.1.32.0
Size:              27144 kB
Anonymous:             0 kB
7f144235f000-7f14428dc000 r--p 01b5f000 fd:01 123 /x/libonnxruntime.so.1.32.0
Anonymous:           336 kB
7f1442900000-7f1442a00000 r--p 00000000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7f1442a00000-7f1442b00000 rw-p 00000000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7f1442c00000-7f1442d00000 r--p 00000000 00:00 0 
Anonymous:             0 kB
7f1442e00000-7f1442f00000 r--s 00000000 fd:01 789 /dev/shm/x
Anonymous:             0 kB
7f1443000000-7f1443001000 r-xp 00000000 fd:01 123 /y/libonnxruntime.so
Anonymous:             4 kB
7f1444000000-7f1444001000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            super::clean_file_mappings(smaps),
            vec![
                0x7f14408dd000..0x7f144235f000,
                0x7f1442900000..0x7f1442a00000
            ]
        );
    }
}
