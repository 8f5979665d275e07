//! RFC 9162 (Certificate Transparency v2) Merkle trees over a chain's events:
//! leaf hash = SHA-256(0x00 ‖ entry), node hash = SHA-256(0x01 ‖ left ‖ right),
//! the empty tree's hash = SHA-256("").
//!
//! [`Tree`] keeps the root incrementally (O(log n) state and work per
//! append); the proof functions build and check inclusion and consistency
//! proofs (RFC 9162 §2.1.3 and §2.1.4), with the edge rules of the
//! transparency-dev reference implementation: hashes are exactly 32 bytes,
//! and a consistency proof from the empty tree is an error.

use sha2::{Digest, Sha256};

use crate::hash::Hash32;

/// Why a proof was refused or could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The sizes cannot be compared (size1 > size2, or size1 = 0).
    #[error("no consistency proof between sizes {size1} and {size2} (needs 0 < size1 <= size2)")]
    Sizes {
        /// Older size.
        size1: u64,
        /// Newer size.
        size2: u64,
    },
    /// The proof has the wrong number of hashes.
    #[error("proof has {got} hashes, expected {expected}")]
    ProofLength {
        /// Hashes given.
        got: usize,
        /// Hashes the sizes call for.
        expected: usize,
    },
    /// The proof does not lead to the given root(s).
    #[error("proof does not match the root")]
    RootMismatch,
    /// A node could not be read from where the tree is kept.
    #[error("tree node unavailable: {0}")]
    Storage(String),
}

/// SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    Hash32(h.finalize().into())
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// The hash of the empty tree, SHA-256("").
pub fn empty_root() -> Hash32 {
    Hash32::of(b"")
}

/// An append-only Merkle tree that keeps only the roots of its maximal
/// perfect subtrees (one per set bit of the size).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    // (height, hash), heights strictly decreasing from the left.
    frontier: Vec<(u32, Hash32)>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf given its leaf hash.
    pub fn push(&mut self, leaf: Hash32) {
        let (mut height, mut hash) = (0u32, leaf);
        while let Some(&(h, left)) = self.frontier.last() {
            if h != height {
                break;
            }
            self.frontier.pop();
            hash = node_hash(&left, &hash);
            height += 1;
        }
        self.frontier.push((height, hash));
        self.size += 1;
    }

    /// The tree head: the Merkle tree hash of all leaves.
    pub fn root(&self) -> Hash32 {
        let mut it = self.frontier.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&(_, last)) => it.fold(last, |acc, (_, left)| node_hash(left, &acc)),
        }
    }
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle tree hash of `leaves` (leaf hashes), RFC 9162 §2.1.1.
pub fn root_of(leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Every complete-subtree hash of a tree, level by level: O(n) to build
/// (2n hashes of memory), then O(log² n) per root or proof of any prefix.
#[derive(Debug, Clone)]
pub struct Levels {
    // levels[h][i] covers leaves [i·2^h, (i+1)·2^h); levels[0] are the leaves.
    levels: Vec<Vec<Hash32>>,
}

impl Levels {
    /// Builds all levels over `leaves` (leaf hashes).
    pub fn new(leaves: Vec<Hash32>) -> Self {
        let mut levels = vec![leaves];
        while let Some(prev) = levels.last().filter(|l| l.len() >= 2) {
            let next = prev
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        Levels { levels }
    }
}

impl Nodes for Levels {
    fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or(MerkleError::IndexOutOfRange {
                index: index << level,
                size: self.size(),
            })
    }
}

/// Where the perfect subtrees of an RFC 9162 tree are kept: in memory
/// ([`Levels`]) or in a store that maintains them as leaves are appended.
/// Roots and proofs need only O(log² n) nodes, so a stored tree answers
/// them without reading the leaves.
pub trait Nodes {
    /// Number of leaves.
    fn size(&self) -> u64;

    /// The root of the perfect subtree at `level` covering leaves
    /// `[index·2^level, (index+1)·2^level)`; only subtrees wholly inside
    /// the tree are asked for.
    fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError>;

    /// Root of the first `size` leaves.
    fn root(&self, size: u64) -> Result<Hash32, MerkleError> {
        range_root(self, 0, check_size(self, size)?)
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size`
    /// leaves (RFC 9162 §2.1.3.1), leaf-side first.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash32>, MerkleError> {
        let n = check_size(self, size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::new();
        // Walk down from the root, collecting siblings, then reverse.
        let (mut start, mut len, mut m) = (0u64, n, index);
        while len > 1 {
            let k = split(len as usize) as u64;
            if m < k {
                out.push(range_root(self, start + k, len - k)?);
                len = k;
            } else {
                out.push(range_root(self, start, k)?);
                start += k;
                len -= k;
                m -= k;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Consistency proof between the first `size1` and the first `size2`
    /// leaves (RFC 9162 §2.1.4.1).
    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash32>, MerkleError> {
        let n = check_size(self, size2)?;
        if size1 == 0 || size1 > size2 {
            return Err(MerkleError::Sizes { size1, size2 });
        }
        let mut out = consistency_ranges(size1 as usize, n as usize)
            .map(|(start, len)| range_root(self, start as u64, len as u64))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

fn check_size<N: Nodes + ?Sized>(t: &N, size: u64) -> Result<u64, MerkleError> {
    if size > t.size() {
        return Err(MerkleError::Sizes {
            size1: size,
            size2: t.size(),
        });
    }
    Ok(size)
}

/// Root of leaves `[start, start + len)`; `start` is a multiple of the
/// largest power of two not above `len` whenever that range is perfect,
/// which RFC 9162's recursions guarantee.
fn range_root<N: Nodes + ?Sized>(t: &N, start: u64, len: u64) -> Result<Hash32, MerkleError> {
    match len {
        0 => Ok(empty_root()),
        _ if len.is_power_of_two() && start.is_multiple_of(len) => {
            t.node(len.trailing_zeros(), start / len)
        }
        _ => {
            let k = split(len as usize) as u64;
            Ok(node_hash(
                &range_root(t, start, k)?,
                &range_root(t, start + k, len - k)?,
            ))
        }
    }
}

/// The nodes that become complete when leaf `index` (hash `leaf`) is
/// appended: the leaf itself, then each parent for as long as the new node
/// is a right child. `left(level, index)` reads an existing node. This is
/// what a store writes per append to keep a tree without rebuilding it.
pub fn completed_nodes(
    index: u64,
    leaf: Hash32,
    left: &mut dyn FnMut(u32, u64) -> Result<Hash32, MerkleError>,
) -> Result<Vec<(u32, u64, Hash32)>, MerkleError> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut idx, mut cur) = (0u32, index, leaf);
    while idx % 2 == 1 {
        let l = left(level, idx - 1)?;
        cur = node_hash(&l, &cur);
        level += 1;
        idx /= 2;
        out.push((level, idx, cur));
    }
    Ok(out)
}

/// The inclusion proof of leaf `index` in the tree of `leaves`
/// (RFC 9162 §2.1.3.1), leaf-side first. Builds the whole tree; to make many
/// proofs, build [`Levels`] once.
pub fn inclusion_proof(leaves: &[Hash32], index: u64) -> Result<Vec<Hash32>, MerkleError> {
    Levels::new(leaves.to_vec()).inclusion_proof(index, leaves.len() as u64)
}

/// The consistency proof between the first `size1` leaves and all of
/// `leaves` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(leaves: &[Hash32], size1: u64) -> Result<Vec<Hash32>, MerkleError> {
    Levels::new(leaves.to_vec()).consistency_proof(size1, leaves.len() as u64)
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves whose root
/// is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash32,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::ProofLength {
                got: proof.len(),
                expected: inclusion_len(index, size),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofLength {
            got: proof.len(),
            expected: inclusion_len(index, size),
        });
    }
    if r == *root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Number of hashes in the consistency proof between sizes `0 < m < n`
/// (the shape of RFC 9162's SUBPROOF, without hashing).
fn consistency_len(m: u64, n: u64) -> usize {
    consistency_ranges(m as usize, n as usize).count()
}

/// The leaf ranges `(start, len)` whose roots form the consistency proof
/// between sizes `0 < m <= n`, root side first (RFC 9162 §2.1.4.1's SUBPROOF
/// walked iteratively); the proof lists them in reverse.
fn consistency_ranges(m: usize, n: usize) -> impl Iterator<Item = (usize, usize)> {
    let (mut start, mut len, mut m, mut complete) = (0usize, n, m, true);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if m == len {
            done = true;
            // The old tree's own root closes the proof unless it is a
            // complete subtree the verifier already has.
            return (!complete).then_some((start, len));
        }
        let k = split(len);
        if m <= k {
            let r = (start + k, len - k);
            len = k;
            Some(r)
        } else {
            let r = (start, k);
            start += k;
            len -= k;
            m -= k;
            complete = false;
            Some(r)
        }
    })
}

fn inclusion_len(index: u64, size: u64) -> usize {
    // Number of levels where the path has a sibling: bits of the last index
    // below the level at which `index` and `size - 1` share a prefix, plus
    // the levels on the right border.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Checks that the tree of `size2` leaves with root `root2` extends the tree
/// of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash32,
    root2: &Hash32,
    proof: &[Hash32],
) -> Result<(), MerkleError> {
    if size1 == 0 || size1 > size2 {
        return Err(MerkleError::Sizes { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength {
                got: proof.len(),
                expected: 0,
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let bad_len = || MerkleError::ProofLength {
        got: proof.len(),
        expected: consistency_len(size1, size2),
    };
    // When size1 is a power of two the old root is itself a node of the new
    // tree and is not repeated in the proof.
    let mut path: Vec<&Hash32> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(root1);
    }
    path.extend(proof.iter());
    let (first, rest) = path.split_first().ok_or_else(bad_len)?;
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if snode == 0 {
            return Err(bad_len());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(bad_len());
    }
    if fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    /// RFC 9162's recursive PATH and SUBPROOF, verbatim, as the reference
    /// the iterative versions must match.
    fn path_ref(m: usize, d: &[Hash32]) -> Vec<Hash32> {
        if d.len() <= 1 {
            return vec![];
        }
        let k = split(d.len());
        let mut out;
        if m < k {
            out = path_ref(m, &d[..k]);
            out.push(root_of(&d[k..]));
        } else {
            out = path_ref(m - k, &d[k..]);
            out.push(root_of(&d[..k]));
        }
        out
    }

    fn subproof_ref(m: usize, d: &[Hash32], b: bool) -> Vec<Hash32> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![root_of(d)] };
        }
        let k = split(n);
        let mut out;
        if m <= k {
            out = subproof_ref(m, &d[..k], b);
            out.push(root_of(&d[k..]));
        } else {
            out = subproof_ref(m - k, &d[k..], false);
            out.push(root_of(&d[..k]));
        }
        out
    }

    #[test]
    fn levels_match_the_rfc_recursions() {
        let all = leaves(45);
        let lv = Levels::new(all.clone());
        for n in 1..=45usize {
            assert_eq!(lv.root(n as u64).unwrap(), root_of(&all[..n]));
            for i in 0..n {
                assert_eq!(
                    lv.inclusion_proof(i as u64, n as u64).unwrap(),
                    path_ref(i, &all[..n]),
                    "n {n} i {i}"
                );
            }
            for m in 1..=n {
                assert_eq!(
                    lv.consistency_proof(m as u64, n as u64).unwrap(),
                    subproof_ref(m, &all[..n], true),
                    "m {m} n {n}"
                );
            }
        }
        assert!(lv.root(46).is_err());
    }

    #[test]
    fn incremental_root_equals_recursive_root() {
        let all = leaves(70);
        let mut t = Tree::new();
        assert_eq!(t.root(), empty_root());
        for (i, l) in all.iter().enumerate() {
            t.push(*l);
            assert_eq!(t.size(), i as u64 + 1);
            assert_eq!(t.root(), root_of(&all[..=i]), "size {}", i + 1);
        }
    }

    /// A tree kept node by node, as a store keeps it.
    struct Map(std::collections::HashMap<(u32, u64), Hash32>, u64);

    impl Nodes for Map {
        fn size(&self) -> u64 {
            self.1
        }
        fn node(&self, level: u32, index: u64) -> Result<Hash32, MerkleError> {
            self.0
                .get(&(level, index))
                .copied()
                .ok_or(MerkleError::Storage(format!("no node ({level}, {index})")))
        }
    }

    #[test]
    fn incrementally_kept_nodes_answer_like_levels() {
        let all = leaves(70);
        let mut kept = Map(Default::default(), 0);
        for (i, leaf) in all.iter().enumerate() {
            let nodes = completed_nodes(i as u64, *leaf, &mut |l, x| kept.node(l, x)).unwrap();
            for (l, x, h) in nodes {
                kept.0.insert((l, x), h);
            }
            kept.1 += 1;
            let levels = Levels::new(all[..=i].to_vec());
            let n = i as u64 + 1;
            assert_eq!(kept.root(n).unwrap(), levels.root(n).unwrap());
            for m in 1..=n {
                assert_eq!(
                    kept.consistency_proof(m, n).unwrap(),
                    levels.consistency_proof(m, n).unwrap()
                );
                assert_eq!(
                    kept.inclusion_proof(m - 1, n).unwrap(),
                    levels.inclusion_proof(m - 1, n).unwrap()
                );
            }
        }
        // Each append writes the leaf plus one node per completed level:
        // 2n - popcount(n) nodes for n leaves.
        assert_eq!(kept.0.len() as u64, 2 * 70 - 70u64.count_ones() as u64);
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_tampering_fails() {
        for n in 1..=33usize {
            let all = leaves(n);
            let root = root_of(&all);
            for i in 0..n as u64 {
                let proof = inclusion_proof(&all, i).unwrap();
                assert_eq!(proof.len(), inclusion_len(i, n as u64), "n {n} i {i}");
                verify_inclusion(i, n as u64, &all[i as usize], &proof, &root).unwrap();
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(i, n as u64, &other, &proof, &root).is_err());
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(i, n as u64, &all[i as usize], &bad, &root).is_err());
                }
                // Another index under the same root and size is refused.
                let j = (i + 1) % n as u64;
                if all[j as usize] != all[i as usize] && n > 1 {
                    assert!(
                        verify_inclusion(j, n as u64, &all[i as usize], &proof, &root).is_err()
                    );
                }
            }
            for m in 1..=n as u64 {
                let proof = consistency_proof(&all, m).unwrap();
                if m < n as u64 {
                    assert_eq!(proof.len(), consistency_len(m, n as u64), "m {m} n {n}");
                }
                let old = root_of(&all[..m as usize]);
                verify_consistency(m, n as u64, &old, &root, &proof).unwrap();
                let forked = leaf_hash(b"fork");
                if m < n as u64 {
                    assert!(verify_consistency(m, n as u64, &forked, &root, &proof).is_err());
                    let mut extra = proof.clone();
                    extra.push(forked);
                    assert!(verify_consistency(m, n as u64, &old, &root, &extra).is_err());
                }
            }
        }
        assert!(consistency_proof(&leaves(3), 0).is_err());
        assert!(inclusion_proof(&leaves(3), 3).is_err());
    }
}
