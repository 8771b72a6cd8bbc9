//! The quiet-room gate: skips the base model while the room holds nothing but its own noise.

/// Quiet-room gate: the base model is skipped while the newest 76 frames (a whole embedding
/// window) hold nothing louder than the room's noise floor plus `GATE_DB`. The log-mel window
/// keeps sliding, so when the gate opens the next embedding sees its full context at once.
pub const GATE_DB: f32 = 10.0;
/// Blocks that cover one embedding window (76 frames in blocks of 8).
const GATE_BLOCKS: usize = 10;
/// The lowest noise floor the gate keeps, in the front end's dB: below any real 16-bit
/// microphone's own noise (1 LSB of white noise reads about 21 dB). Digital silence (a muted
/// input reads -100 dB) would otherwise drag the floor so low that the gate stayed open for
/// minutes once sound returned, while the floor crept back up.
const GATE_MIN_FLOOR: f32 = 10.0;
/// Blocks (5.1 s) after which the floor has risen to at least the quietest of them: a room that
/// got louder (a fan, a sound server back from digital silence) closes the gate again within
/// seconds, not after the slow creep.
const GATE_FLOOR_BLOCKS: usize = 64;

pub(crate) struct Gate {
    pub(crate) enabled: bool,
    floor: f32,
    recent: [f32; GATE_BLOCKS],
    pos: usize,
    started: bool,
    /// The last `GATE_FLOOR_BLOCKS` loudnesses, for the floor's rise.
    history: [f32; GATE_FLOOR_BLOCKS],
    hpos: usize,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            enabled: true,
            floor: 0.0,
            recent: [0.0; GATE_BLOCKS],
            pos: 0,
            started: false,
            history: [f32::INFINITY; GATE_FLOOR_BLOCKS],
            hpos: 0,
        }
    }

    /// Takes one block's loudness (dB of its loudest mel bin); says whether to run the model.
    pub(crate) fn open(&mut self, loud: f32) -> bool {
        if !self.started {
            self.floor = loud;
            self.recent = [f32::NEG_INFINITY; GATE_BLOCKS];
            self.history = [f32::INFINITY; GATE_FLOOR_BLOCKS];
            self.started = true;
        }
        self.history[self.hpos] = loud;
        self.hpos = (self.hpos + 1) % GATE_FLOOR_BLOCKS;
        let quietest = self.history.iter().copied().fold(f32::INFINITY, f32::min);
        // The floor follows the quietest blocks down at once and creeps up 0.05 dB per block,
        // or faster: it is never below the quietest block of the last 5 s.
        self.floor = if loud < self.floor {
            loud
        } else {
            self.floor + 0.05
        }
        .max(quietest)
        .max(GATE_MIN_FLOOR);
        self.recent[self.pos] = loud;
        self.pos = (self.pos + 1) % GATE_BLOCKS;
        let peak = self
            .recent
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        !self.enabled || peak > self.floor + GATE_DB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new()
    }

    #[test]
    fn the_gate_opens_for_sound_and_closes_after_a_window_of_quiet() {
        let mut g = gate();
        assert!(
            (0..50).all(|_| !g.open(40.0)),
            "steady room noise keeps it shut"
        );
        assert!(g.open(70.0), "a sound 30 dB over the room opens it");
        let open_after: Vec<bool> = (0..GATE_BLOCKS + 1).map(|_| g.open(40.0)).collect();
        assert!(
            open_after[..GATE_BLOCKS - 1].iter().all(|&o| o),
            "{open_after:?}"
        );
        assert!(!open_after[GATE_BLOCKS], "{open_after:?}");
    }

    #[test]
    fn digital_silence_does_not_hold_the_gate_open_afterwards() {
        let mut g = gate();
        assert!(
            (0..100).all(|_| !g.open(-100.0)),
            "digital silence keeps it shut"
        );
        // Then the faintest real input: 1 LSB of noise. The gate may open briefly while the
        // floor adapts, but must not stay open.
        let after: Vec<bool> = (0..100).map(|_| g.open(21.0)).collect();
        assert!(!after[60..].iter().any(|&o| o), "still open: {after:?}");
        // And from digital silence straight to an ordinary room (rms 8 reads 39.5 dB): shut
        // again within about 5 s (64 blocks) rather than the half-minute creep.
        let mut g = gate();
        (0..100).for_each(|_| {
            g.open(-100.0);
        });
        let after: Vec<bool> = (0..100).map(|_| g.open(39.5)).collect();
        assert!(!after[70..].iter().any(|&o| o), "still open: {after:?}");
    }

    #[test]
    fn a_room_that_gets_louder_shuts_the_gate_again_within_seconds() {
        let mut g = gate();
        (0..50).for_each(|_| {
            g.open(30.0);
        });
        // A fan comes on: 20 dB louder, steady.
        let after: Vec<bool> = (0..100).map(|_| g.open(50.0)).collect();
        assert!(after[0], "the change itself opens the gate");
        assert!(!after[70..].iter().any(|&o| o), "still open: {after:?}");
        // A word over the fan still opens it.
        assert!(g.open(70.0));
    }
}
