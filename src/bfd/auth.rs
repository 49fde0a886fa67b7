//! Authentication of Control packets (RFC 5880 §6.7): simple password, keyed MD5 and keyed
//! SHA1, each also meticulous, with the sequence checks that keep a replayed or spoofed
//! packet from taking a session down.

use md5::{Digest, Md5};
use sha1::Sha1;
use thiserror::Error;

use super::packet::{Auth, AuthType, MIN_LEN, Packet};

/// A session's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kind: AuthType,
    pub id: u8,
    /// 1–16 octets for a password or MD5, 1–20 for SHA1 (checked with the configuration).
    pub secret: Vec<u8>,
}

impl Key {
    fn meticulous(&self) -> bool {
        matches!(
            self.kind,
            AuthType::MeticulousKeyedMd5 | AuthType::MeticulousKeyedSha1
        )
    }
}

/// What the receiver remembers of the sequence (RFC 5880 §6.8.1 bfd.RcvAuthSeq,
/// bfd.AuthSeqKnown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxSeq {
    pub known: bool,
    pub seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("authentication section missing")]
    Missing,
    #[error("authenticated packet on a session without a key")]
    Unexpected,
    #[error("authentication type {0:?}, not the configured one")]
    Type(AuthType),
    #[error("key ID {0}, not the configured one")]
    KeyId(u8),
    #[error("wrong password or digest")]
    Digest,
    #[error("sequence number {got} outside the window after {last}")]
    Sequence { got: u32, last: u32 },
}

/// Adds the authentication section to `p` and returns its octets (RFC 5880 §6.7.2–§6.7.4):
/// for the digest types the digest is taken over the packet with the key in its place.
pub fn sign(mut p: Packet, key: &Key, seq: u32) -> Vec<u8> {
    let Some(len) = key.kind.digest_len() else {
        p.auth = Some(Auth::Password {
            key_id: key.id,
            password: key.secret.clone(),
        });
        return p.encode();
    };
    p.auth = Some(Auth::Digest {
        kind: key.kind,
        key_id: key.id,
        reserved: 0,
        seq,
        digest: padded(&key.secret, len),
    });
    let mut b = p.encode();
    let d = digest(key.kind, &b);
    b[MIN_LEN + 8..].copy_from_slice(&d);
    b
}

/// Checks a received packet (`raw`: its octets as received) against the session's key and
/// sequence (RFC 5880 §6.7.1–§6.7.4); on success the sequence is remembered.
pub fn verify(key: Option<&Key>, raw: &[u8], p: &Packet, rx: &mut RxSeq) -> Result<(), AuthError> {
    let (key, auth) = match (key, &p.auth) {
        (None, None) => return Ok(()),
        (None, Some(_)) => return Err(AuthError::Unexpected),
        (Some(_), None) => return Err(AuthError::Missing),
        (Some(k), Some(a)) => (k, a),
    };
    if auth.kind() != key.kind {
        return Err(AuthError::Type(auth.kind()));
    }
    match auth {
        Auth::Password { key_id, password } => {
            check_id(key, *key_id)?;
            if *password != key.secret {
                return Err(AuthError::Digest);
            }
            Ok(())
        }
        Auth::Digest {
            key_id,
            seq,
            digest: got,
            ..
        } => {
            check_id(key, *key_id)?;
            // §6.7.3: the window starts at the last sequence (meticulous: after it) and is
            // 3 × Detect Mult long, in circular space.
            if rx.known {
                let ahead = seq.wrapping_sub(rx.seq);
                let first = u32::from(key.meticulous());
                if ahead < first || ahead > 3 * u32::from(p.detect_mult) {
                    return Err(AuthError::Sequence {
                        got: *seq,
                        last: rx.seq,
                    });
                }
            }
            let len = MIN_LEN + auth.wire_len();
            let mut b = raw.get(..len).ok_or(AuthError::Digest)?.to_vec();
            b[MIN_LEN + 8..].copy_from_slice(&padded(&key.secret, got.len()));
            if digest(key.kind, &b) != *got {
                return Err(AuthError::Digest);
            }
            *rx = RxSeq {
                known: true,
                seq: *seq,
            };
            Ok(())
        }
        Auth::Other { .. } => Err(AuthError::Type(auth.kind())),
    }
}

fn check_id(key: &Key, id: u8) -> Result<(), AuthError> {
    match id == key.id {
        true => Ok(()),
        false => Err(AuthError::KeyId(id)),
    }
}

/// The key zero-padded (or cut) to the digest's length (§6.7.3, §6.7.4).
fn padded(secret: &[u8], len: usize) -> Vec<u8> {
    let mut k = secret.to_vec();
    k.resize(len, 0);
    k
}

fn digest(kind: AuthType, b: &[u8]) -> Vec<u8> {
    match kind {
        AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => Sha1::digest(b).to_vec(),
        _ => Md5::digest(b).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::State;

    fn packet() -> Packet {
        Packet::sample(State::Up, 9, 4)
    }

    fn key(kind: AuthType) -> Key {
        Key {
            kind,
            id: 1,
            secret: b"secret".to_vec(),
        }
    }

    fn check(k: &Key, raw: &[u8], rx: &mut RxSeq) -> Result<(), AuthError> {
        verify(Some(k), raw, &Packet::decode(raw).unwrap(), rx)
    }

    #[test]
    fn every_type_signs_and_verifies() {
        for kind in [
            AuthType::SimplePassword,
            AuthType::KeyedMd5,
            AuthType::MeticulousKeyedMd5,
            AuthType::KeyedSha1,
            AuthType::MeticulousKeyedSha1,
        ] {
            let k = key(kind);
            let raw = sign(packet(), &k, 7);
            let mut rx = RxSeq::default();
            assert_eq!(check(&k, &raw, &mut rx), Ok(()), "{kind:?}");
            let wrong = Key {
                secret: b"secreT".to_vec(),
                ..k.clone()
            };
            assert_eq!(
                check(&wrong, &raw, &mut RxSeq::default()),
                Err(AuthError::Digest)
            );
            let other_id = Key { id: 2, ..k.clone() };
            assert_eq!(
                check(&other_id, &raw, &mut RxSeq::default()),
                Err(AuthError::KeyId(1))
            );
        }
    }

    /// RFC 5880 §6.7.3: MD5 is taken over the packet with the key, zero-padded, in the
    /// digest field; checked against an independent computation of the same octets.
    #[test]
    fn md5_digest_is_over_the_keyed_packet() {
        let k = key(AuthType::KeyedMd5);
        let raw = sign(packet(), &k, 0x01020304);
        assert_eq!(raw.len(), 48);
        assert_eq!(&raw[24..32], &[2, 24, 1, 0, 1, 2, 3, 4]);
        let mut keyed = raw.clone();
        keyed[32..].copy_from_slice(b"secret\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(&raw[32..], Md5::digest(&keyed).as_slice());
    }

    #[test]
    fn a_tampered_packet_fails() {
        let k = key(AuthType::KeyedSha1);
        let mut raw = sign(packet(), &k, 1);
        raw[1] = (raw[1] & 0x3f) | 0x40; // Up → Down
        assert_eq!(
            check(&k, &raw, &mut RxSeq::default()),
            Err(AuthError::Digest)
        );
    }

    #[test]
    fn keyed_and_unkeyed_do_not_mix() {
        let k = key(AuthType::KeyedMd5);
        let plain = packet().encode();
        let p = Packet::decode(&plain).unwrap();
        assert_eq!(
            verify(Some(&k), &plain, &p, &mut RxSeq::default()),
            Err(AuthError::Missing)
        );
        let signed = sign(packet(), &k, 1);
        let p = Packet::decode(&signed).unwrap();
        assert_eq!(
            verify(None, &signed, &p, &mut RxSeq::default()),
            Err(AuthError::Unexpected)
        );
        let sha = key(AuthType::KeyedSha1);
        assert_eq!(
            verify(Some(&sha), &signed, &p, &mut RxSeq::default()),
            Err(AuthError::Type(AuthType::KeyedMd5))
        );
    }

    /// §6.7.3: keyed accepts a repeat of the last sequence number, meticulous does not; both
    /// refuse one behind or beyond 3 × Detect Mult ahead, across the wrap.
    #[test]
    fn sequence_windows() {
        for (kind, repeat_ok) in [
            (AuthType::KeyedMd5, true),
            (AuthType::MeticulousKeyedMd5, false),
            (AuthType::KeyedSha1, true),
            (AuthType::MeticulousKeyedSha1, false),
        ] {
            let k = key(kind);
            let last = u32::MAX - 2;
            let at = |seq: u32| {
                let mut rx = RxSeq {
                    known: true,
                    seq: last,
                };
                check(&k, &sign(packet(), &k, seq), &mut rx).map(|()| rx.seq)
            };
            assert_eq!(at(last).is_ok(), repeat_ok, "{kind:?}");
            assert_eq!(at(last.wrapping_add(1)), Ok(last.wrapping_add(1)));
            assert_eq!(at(last.wrapping_add(9)), Ok(6));
            assert!(at(last.wrapping_add(10)).is_err());
            assert!(at(last - 1).is_err());
        }
    }
}
