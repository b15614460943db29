//! A back-end node's memory cache: whole files in LRU order, bounded in
//! bytes (the seed's "linked list stored in LRU order").
//!
//! Memory: three arrays over every file id (two `u32` links and a flag, 9
//! bytes per file), so 36 000 files cost 324 KB per node; every operation is
//! O(1) plus one step per evicted file. The cache does not decide what is
//! cacheable (the cluster skips files over 500 KB).

const NIL: u32 = u32::MAX;

/// Files cached by one node, most recently used first.
#[derive(Debug, Clone)]
pub struct LruCache {
    capacity: u64,
    used: u64,
    present: Vec<bool>,
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to go.
    tail: u32,
}

impl LruCache {
    /// An empty cache of `capacity` bytes over file ids `0..files`.
    pub fn new(capacity: u64, files: usize) -> Self {
        Self {
            capacity,
            used: 0,
            present: vec![false; files],
            prev: vec![NIL; files],
            next: vec![NIL; files],
            head: NIL,
            tail: NIL,
        }
    }

    /// Whether `file` is cached.
    pub fn contains(&self, file: u32) -> bool {
        self.present[file as usize]
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn unlink(&mut self, file: u32) {
        let (p, n) = (self.prev[file as usize], self.next[file as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }

    fn push_front(&mut self, file: u32) {
        self.prev[file as usize] = NIL;
        self.next[file as usize] = self.head;
        if self.head == NIL {
            self.tail = file;
        } else {
            self.prev[self.head as usize] = file;
        }
        self.head = file;
    }

    /// Marks a cached `file` most recently used (no-op if absent).
    pub fn touch(&mut self, file: u32) {
        if self.contains(file) && self.head != file {
            self.unlink(file);
            self.push_front(file);
        }
    }

    /// Caches `file` (`sizes[file]` bytes) as most recently used, evicting
    /// least recently used files until it fits; a file larger than the whole
    /// cache is not kept. Already cached: a touch.
    pub fn insert(&mut self, file: u32, sizes: &[u32]) {
        if self.contains(file) {
            self.touch(file);
            return;
        }
        let size = u64::from(sizes[file as usize]);
        if size > self.capacity {
            return;
        }
        while self.used + size > self.capacity {
            let victim = self.tail;
            self.unlink(victim);
            self.present[victim as usize] = false;
            self.used -= u64::from(sizes[victim as usize]);
        }
        self.push_front(file);
        self.present[file as usize] = true;
        self.used += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_until_the_new_file_fits() {
        let sizes = [40, 30, 30, 50, 200];
        let mut c = LruCache::new(100, sizes.len());
        c.insert(0, &sizes);
        c.insert(1, &sizes);
        c.insert(2, &sizes);
        assert_eq!(c.used(), 100);
        c.touch(0); // order now 0, 2, 1
        c.insert(3, &sizes); // 50 bytes: 1 then 2 go, 0 stays
        assert!(c.contains(0) && c.contains(3));
        assert!(!c.contains(1) && !c.contains(2));
        assert_eq!(c.used(), 90);
        c.insert(4, &sizes); // larger than the cache: not kept, nothing evicted
        assert!(!c.contains(4));
        assert_eq!(c.used(), 90);
        c.insert(1, &sizes); // 30 more: 0 (least recent now) goes
        assert!(!c.contains(0) && c.contains(1) && c.contains(3));
        assert_eq!(c.used(), 80);
    }
}
