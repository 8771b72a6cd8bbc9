use super::*;
use crate::audio::synth::Engine;
use crate::pipeline::head::Voices;

/// A recipe's error, as a string.
fn error(text: &str) -> String {
    Recipe::parse(text, "r.toml").unwrap_err().to_string()
}

#[test]
fn the_printed_recipe_reads_back_as_the_defaults() {
    let printed = Recipe::default().to_toml();
    assert_eq!(
        Recipe::parse(&printed, "printed").unwrap(),
        Recipe::default()
    );
    assert_eq!(Recipe::parse("", "empty").unwrap(), Recipe::default());
    // Commented: every key has a comment above it.
    let lines: Vec<&str> = printed.lines().collect();
    for (i, l) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && l.contains(" = "))
    {
        assert!(lines[i - 1].starts_with('#'), "no comment above {l:?}");
    }
}

#[test]
fn the_default_recipe_gives_the_default_options_of_every_knob() {
    let o = Recipe::default().options();
    assert_eq!(format!("{o:?}"), format!("{:?}", TrainOptions::default()));
    // Each knob is a key: a recipe of other options gives those options back.
    let other = TrainOptions {
        seed: 7,
        anyone_l2: 0.5,
        template_augmented: false,
        synth_engines: vec![Engine::Festival],
        word_check: Some(Rule {
            margin: 0.3,
            ..Rule::default()
        }),
        ..TrainOptions::default()
    };
    let recipe = Recipe::of(&other);
    let back = Recipe::parse(&recipe.to_toml(), "other").unwrap();
    assert_eq!(format!("{:?}", back.options()), format!("{other:?}"));
}

/// `TrainOptions::default()` as the command line's flags left it before the recipe (every
/// `Option` flag unset, every switch off), with the keys added since (0.2.0: an `anyone`
/// word's threshold by its length, its phonetic neighbours): the recipe's defaults are these.
const FLAG_DEFAULTS: &str = "TrainOptions { context: 2, hidden: 0, augment: 6, epochs: 40, seed: 1, threshold: 0.5, smoothing: 2, refractory: 1.0, source_weights: [0.5, 0.5, 0.5, 5.0, 6.0], l2: 0.001, reversed: true, chimeras: 0, speed: 0.12, gain_db: 10.0, snr_min: 5.0, room_noise: 0.5, template_augmented: true, template_quantile: 0.05, template_hold: 0, template_slack: 0.15, use_bank: true, mine: 3000, bank_max: 1000000, cross_validate: true, voices: Mine, anyone_warp: 0.15, anyone_colour: 6.0, anyone_speed: 0.15, anyone_snr_min: 5.0, anyone_pitch: 0.0, anyone_synth_pitch: 0.0, anyone_augment: 12, anyone_slack: 0.3, anyone_synth: 60, anyone_synth_share: 0.7, anyone_synth_copies: 2, anyone_l2: 0.3, anyone_threshold: 0.3, anyone_threshold_per_sound: 0.15, anyone_threshold_most: 0.7, anyone_neighbours: 0, neighbour_voices: 6, neighbour_weight: 2.0, ensemble: true, mine_synth: 0, mine_foreign: 2, unknown_voices: 0, unknown_warp: 0.2, unknown_colour: 6.0, bank_rate: 0.0, foreign_warp: 0.2, mine_colour: 0.0, mine_warp: 0.0, mine_pitch: 0.0, synth_engines: [Espeak, Flite], synth_cache: None, bank_engines: [Espeak], word_check: Some(Rule { candidate: 0.2, weight: 1.75, centre: 0.255, margin: 0.15, floor: 0.1 }) }";

#[test]
fn the_defaults_are_the_flags_defaults_of_before() {
    assert_eq!(format!("{:?}", Recipe::default().options()), FLAG_DEFAULTS);
}

#[test]
fn a_partial_recipe_changes_its_keys_alone() {
    let r = Recipe::parse(
        "[anyone]\nl2 = 0\nsynth = 12\n[word_check]\nfloor = 0.2\n[synth]\nengines = [\"flite\"]\n",
        "r.toml",
    )
    .unwrap();
    let o = r.options();
    assert_eq!((o.anyone_l2, o.anyone_synth), (0.0, 12));
    assert_eq!(o.word_check.unwrap().floor, 0.2);
    assert_eq!(o.word_check.unwrap().margin, Rule::default().margin);
    assert_eq!(o.synth_engines, [Engine::Flite]);
    assert_eq!(o.voices, Voices::Mine);
    let d = TrainOptions::default();
    assert_eq!(
        (o.anyone_warp, o.context, o.epochs),
        (d.anyone_warp, d.context, d.epochs)
    );
    // Dotted keys and inline tables are the same keys.
    let dotted = Recipe::parse("anyone.l2 = 0\nanyone.synth = 12\nword_check = { floor = 0.2 }\nsynth.engines = [\"flite\"]", "d").unwrap();
    assert_eq!(dotted, r);
}

#[test]
fn a_value_out_of_range_is_named_by_file_line_and_key() {
    assert_eq!(
        error("[fit]\nseed = 3\n\n[anyone]\nsynth = 4\nl2 = -1\n"),
        "r.toml:6: key 'anyone.l2': expected a number >= 0, got -1"
    );
    assert_eq!(
        error("[fit]\ncontext = 0\n"),
        "r.toml:2: key 'fit.context': expected a whole number from 1 to 16, got 0"
    );
    assert_eq!(
        error("anyone.speed = 0.7"),
        "r.toml:1: key 'anyone.speed': expected a number from 0 to 0.5, got 0.7"
    );
    assert_eq!(
        error("[detector]\nthreshold = nan\n"),
        "r.toml:2: key 'detector.threshold': expected a number from 0 to 1, got NaN"
    );
    assert_eq!(
        error("[word_check]\ncandidate = 1\n"),
        "r.toml:2: key 'word_check.candidate': expected a number above 0 and below 1, got 1"
    );
    assert_eq!(
        error("[negatives]\nsource_weights = [1, 1, -2, 1, 1]\n"),
        "r.toml:2: key 'negatives.source_weights': expected a number >= 0, got -2"
    );
    assert_eq!(
        error("[synth]\nengines = []\n"),
        "r.toml:2: key 'synth.engines': expected at least one speech engine (espeak, flite, festival, mbrola), got none"
    );
}

#[test]
fn an_unknown_key_or_a_value_of_the_wrong_type_is_named_by_file_line_and_key() {
    let e = error("[fit]\ncontext = 2\n\n[anyone]\nl3 = 1\n");
    assert!(
        e.starts_with("r.toml:5: key 'anyone.l3': unknown key `l3`"),
        "{e}"
    );
    let e = error("[colour]\nx = 1\n");
    assert!(
        e.starts_with("r.toml:1: key 'colour': unknown key `colour`"),
        "{e}"
    );
    let e = error("[fit]\nepochs = \"many\"\n");
    assert!(
        e.starts_with("r.toml:2: key 'fit.epochs': invalid type: string"),
        "{e}"
    );
    let e = error("[fit]\nepochs = -3\n");
    assert!(e.starts_with("r.toml:2: key 'fit.epochs': "), "{e}");
    let e = error("[negatives]\nsource_weights = [1, 2, 3]\n");
    assert!(
        e.starts_with("r.toml:2: key 'negatives.source_weights': "),
        "{e}"
    );
    let e = error("[synth]\nengines = [\"espeak\", \"pico\"]\n");
    assert!(
        e.starts_with("r.toml:2: key 'synth.engines': unknown speech engine \"pico\""),
        "{e}"
    );
    let e = error("[fit]\ncontext = \n");
    assert!(e.starts_with("r.toml:2: "), "{e}");
    for e in [e, error("[fit\n")] {
        assert!(!e.contains('\n'), "{e}");
    }
}
