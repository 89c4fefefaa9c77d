//! Classification of inbound SMS replies into opt-out, opt-in, help or other (A2P 10DLC / CTIA).
//!
//! # Rule
//!
//! The body is normalised first: lower-cased, Spanish accents folded (`envíe` → `envie`),
//! apostrophes dropped (`don't` → `dont`), every other non-letter/digit treated as a word
//! break. Sentence marks (`. ! ? ; ¡ ¿` and line breaks) also split the body into sentences.
//!
//! 1. **Keyword sentence.** A sentence made only of keywords and filler words (`please`,
//!    `thanks`, `now`, `me`, `it`, `por favor`, `gracias`, ...) with at least one keyword is a
//!    keyword sentence. So `" Stop. "`, `"STOP!!"`, `"Stop please"`, `"Opt-out"`, and the
//!    `STOP` in `"STOP. Wrong person"` all count. Within one sentence, opt-out beats help, and
//!    help beats opt-in.
//! 2. **Opt-out** if any sentence is an opt-out keyword sentence, or if the whole message is
//!    short (at most [`PHRASE_MAX_WORDS`] words) and contains one of the stop phrases as
//!    consecutive words (`stop texting`, `remove me`, `no me envie mas`, ...). A phrase that
//!    starts with `stop` does not count right after a negation (`"don't stop texting me"`).
//!    Phrases are never matched in long messages: they usually talk about something else, and
//!    staff read `Other` messages anyway.
//! 3. **Help** if any sentence is a help keyword sentence.
//! 4. **Opt-in** only if every sentence is either an opt-in keyword sentence or filler alone
//!    (`"Start"`, `"UNSTOP. Thanks"`). Opting a patient back in needs an unambiguous request.
//! 5. Otherwise **Other**.
//!
//! Opt-out errs towards honouring the request: a wrong opt-out costs a reminder and the patient
//! is told how to text START, while a missed one is a TCPA violation.
//!
//! `YES` is deliberately *not* opt-in, although Twilio's own default opt-in list includes it:
//! patients answer "yes" to all kinds of questions. Spanish `COMENZAR` is opt-in so that a
//! Spanish opt-out (`PARAR`, which Twilio itself does not act on) can be undone symmetrically.

/// What an inbound message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    OptOut,
    OptIn,
    Help,
    Other,
}

/// Longest message (in words) in which a stop phrase, as opposed to a keyword, counts.
pub const PHRASE_MAX_WORDS: usize = 12;

/// Single-word opt-out keywords (after normalisation; `opt out` and `stop all` are joined
/// into one word before lookup).
const OPT_OUT: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "revoke",
    "optout",
    // Spanish
    "parar",
    "alto",
    "cancelar",
    "basta",
    "baja",
];

const OPT_IN: &[&str] = &["start", "unstop", "comenzar"];

const HELP: &[&str] = &["help", "info", "ayuda"];

/// Words that do not change the meaning of a keyword sentence ("STOP please", "Help me").
const FILLER: &[&str] = &[
    "please", "pls", "plz", "now", "thanks", "thank", "you", "thx", "ty", "ok", "okay", "hi",
    "hello", "hey", "me", "it", // Spanish
    "por", "favor", "porfavor", "gracias", "ya", "hola", "ahora",
];

/// Opt-out phrases, as normalised consecutive words, matched only in short messages.
const STOP_PHRASES: &[&str] = &[
    "stop texting",
    "stop txting",
    "stop text",
    "stop texts",
    "stop txt",
    "stop messaging",
    "stop message",
    "stop messages",
    "stop msgs",
    "stop sending",
    "stop contacting",
    "stop the texts",
    "stop the messages",
    "stop these texts",
    "stop these messages",
    "stop all texts",
    "stop all messages",
    "unsubscribe",
    "opt out",
    "optout",
    "opt me out",
    "stopall",
    "revoke",
    "dont text me",
    "do not text me",
    "dont txt me",
    "do not txt me",
    "dont text this number",
    "do not text this number",
    "dont message me",
    "do not message me",
    "dont contact me",
    "do not contact me",
    "never text me",
    "never contact me",
    "dont want these texts",
    "dont want your texts",
    "dont want these messages",
    "do not want these texts",
    "do not want these messages",
    "no more texts",
    "no more text",
    "no more txts",
    "no more messages",
    "no more msgs",
    "remove me",
    "remove my number",
    "take me off",
    "take my number off",
    "leave me alone",
    "wrong number",
    // Spanish (accents folded)
    "no me envie mas",
    "no me envies mas",
    "no me envien mas",
    "no me mande mas",
    "no me mandes mas",
    "no me manden mas",
    "no mas mensajes",
    "no mas textos",
    "no quiero recibir",
    "no quiero mensajes",
    "no quiero mas mensajes",
    "deje de enviar",
    "dejen de enviar",
    "deja de enviar",
    "deje de mandar",
    "dejen de mandar",
    "dejen de escribir",
    "dar de baja",
    "darme de baja",
    "cancelar suscripcion",
    "numero equivocado",
];

/// Words that, right before a `stop ...` phrase, turn it into the opposite request.
const NEGATIONS: &[&str] = &["dont", "not", "never", "cant", "cannot", "wont"];

/// Classify an inbound SMS body. See the module docs for the exact rule.
pub fn classify(body: &str) -> Inbound {
    let sentences = sentences(body);
    let kinds: Vec<Option<Inbound>> = sentences.iter().map(|s| keyword_sentence(s)).collect();

    if kinds.contains(&Some(Inbound::OptOut)) {
        return Inbound::OptOut;
    }
    let word_count: usize = sentences.iter().map(Vec::len).sum();
    if word_count <= PHRASE_MAX_WORDS && sentences.iter().any(|s| has_stop_phrase(s)) {
        return Inbound::OptOut;
    }
    if kinds.contains(&Some(Inbound::Help)) {
        return Inbound::Help;
    }
    let opt_in = kinds.contains(&Some(Inbound::OptIn));
    let rest_is_filler = sentences
        .iter()
        .zip(&kinds)
        .all(|(words, kind)| *kind == Some(Inbound::OptIn) || words.iter().all(|w| is_filler(w)));
    if opt_in && rest_is_filler {
        return Inbound::OptIn;
    }
    Inbound::Other
}

/// Split into sentences of normalised words; empty sentences are dropped.
fn sentences(body: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in body.chars() {
        if matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{00B4}') {
            // "don't" must stay one word so it can be matched as "dont".
            continue;
        }
        let sentence_end = matches!(c, '.' | '!' | '?' | ';' | '\u{00A1}' | '\u{00BF}' | '\n');
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                word.push(fold_accent(lower));
            }
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if sentence_end && !words.is_empty() {
            out.push(std::mem::take(&mut words));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if !words.is_empty() {
        out.push(words);
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        other => other,
    }
}

fn is_filler(word: &str) -> bool {
    FILLER.contains(&word)
}

/// The keyword class of a sentence made only of keywords and filler, if it is one.
fn keyword_sentence(words: &[String]) -> Option<Inbound> {
    let mut found: Option<Inbound> = None;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        // Two-word spellings of single keywords: "opt out", "stop all".
        let (joined, used) = match (word, next) {
            ("opt", Some("out")) => ("optout", 2),
            ("stop", Some("all")) => ("stopall", 2),
            _ => (word, 1),
        };
        i += used;
        let kind = if OPT_OUT.contains(&joined) {
            Inbound::OptOut
        } else if HELP.contains(&joined) {
            Inbound::Help
        } else if OPT_IN.contains(&joined) {
            Inbound::OptIn
        } else if is_filler(joined) {
            continue;
        } else {
            return None;
        };
        found = Some(match (found, kind) {
            (Some(Inbound::OptOut), _) | (_, Inbound::OptOut) => Inbound::OptOut,
            (Some(Inbound::Help), _) | (_, Inbound::Help) => Inbound::Help,
            _ => Inbound::OptIn,
        });
    }
    found
}

fn has_stop_phrase(words: &[String]) -> bool {
    STOP_PHRASES.iter().any(|phrase| {
        let needle: Vec<&str> = phrase.split(' ').collect();
        words.windows(needle.len()).enumerate().any(|(at, window)| {
            let matches = window.iter().zip(&needle).all(|(w, n)| w == n);
            let before = at.checked_sub(1).and_then(|i| words.get(i));
            let negated = phrase.starts_with("stop ")
                && before.is_some_and(|w| NEGATIONS.contains(&w.as_str()));
            matches && !negated
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Inbound::*;

    #[test]
    fn classification_table() {
        let cases: &[(&str, Inbound)] = &[
            // Every opt-out keyword, bare.
            ("STOP", OptOut),
            ("STOPALL", OptOut),
            ("UNSUBSCRIBE", OptOut),
            ("CANCEL", OptOut),
            ("END", OptOut),
            ("QUIT", OptOut),
            ("REVOKE", OptOut),
            ("OPTOUT", OptOut),
            ("OPT OUT", OptOut),
            ("opt-out", OptOut),
            ("Stop all", OptOut),
            // Casing, whitespace, punctuation, emoji, filler.
            ("stop", OptOut),
            ("sToP", OptOut),
            (" Stop. ", OptOut),
            ("STOP!!", OptOut),
            ("\tstop\n", OptOut),
            ("\"Stop\"", OptOut),
            ("STOP 🛑", OptOut),
            ("Stop please", OptOut),
            ("Please, STOP!", OptOut),
            ("stop stop stop", OptOut),
            ("Stop it now", OptOut),
            ("Unsubscribe me", OptOut),
            ("STOP. Wrong person", OptOut),
            ("Hi. Cancel", OptOut),
            // Plain-words requests in short messages.
            ("stop texting me", OptOut),
            ("Please stop sending these", OptOut),
            ("Don't text me", OptOut),
            ("do not text me anymore", OptOut),
            ("Remove me from your list", OptOut),
            ("no more texts please", OptOut),
            ("leave me alone", OptOut),
            ("Wrong number", OptOut),
            ("How do I unsubscribe?", OptOut),
            ("I already paid, stop texting me!", OptOut),
            ("I want to opt-out of these", OptOut),
            // Spanish.
            ("PARAR", OptOut),
            ("Alto", OptOut),
            ("cancelar", OptOut),
            ("¡Basta!", OptOut),
            ("BAJA", OptOut),
            ("Basta ya por favor", OptOut),
            ("No me envíe más mensajes", OptOut),
            ("no me envie mas mensajes", OptOut),
            ("Por favor dejen de enviar mensajes", OptOut),
            ("Quiero darme de baja", OptOut),
            ("Número equivocado", OptOut),
            // Opt-in.
            ("START", OptIn),
            ("start", OptIn),
            ("Unstop", OptIn),
            ("START please", OptIn),
            ("Start. Thanks!", OptIn),
            ("Comenzar", OptIn),
            // Help.
            ("HELP", Help),
            ("help?", Help),
            ("Info", Help),
            ("Help me please", Help),
            ("AYUDA", Help),
            ("¿Ayuda?", Help),
            ("Hi. Help", Help),
            // Mixed keywords: opt-out wins, then help.
            ("Stop help", OptOut),
            ("Help. Stop", OptOut),
            ("start help", Help),
            // False-positive guards.
            ("I can't stop by today", Other),
            ("Can I stop by tomorrow to pay?", Other),
            ("Please don't stop texting me, the reminders help", Other),
            ("I need to cancel my appointment", Other),
            ("End of the month I will pay", Other),
            ("The end", Other),
            ("Thanks for the help with my bill yesterday", Other),
            ("Yes", Other),
            ("YES", Other),
            ("Can you start my payment plan", Other),
            ("Started", Other),
            ("Stopped", Other),
            ("Stop by", Other),
            ("Para mañana", Other),
            ("", Other),
            ("   ", Other),
            ("!!!", Other),
            ("thanks", Other),
            // A phrase inside a long message does not count.
            (
                "I paid at the front desk last week and the lady said she would remove me \
                 from the overdue list",
                Other,
            ),
        ];
        let mut failures = Vec::new();
        for (body, expected) in cases {
            let got = classify(body);
            if got != *expected {
                failures.push(format!("{body:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn phrase_limit_is_in_words() {
        let short = "a b c d e f g h i j stop texting";
        assert_eq!(short.split(' ').count(), PHRASE_MAX_WORDS);
        assert_eq!(classify(short), OptOut);
        let long = "a b c d e f g h i j k stop texting";
        assert_eq!(classify(long), Other);
        // A bare keyword sentence counts regardless of length.
        assert_eq!(classify("a b c d e f g h i j k l m n. STOP"), OptOut);
    }
}
