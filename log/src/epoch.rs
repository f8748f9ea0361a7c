//! Epochs: the name of one incarnation of a log's storage. A log whose storage was lost comes
//! back with a new epoch, so every cursor from before is recognised as pointing into a lost
//! history (answered with `reset`, never a silent gap).

/// A fresh random epoch: 12 lowercase base-36 characters.
pub fn new_epoch() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
