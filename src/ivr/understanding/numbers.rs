//! Numbers as people say them, into the digits they would key: "ten forty-two" and "one oh four
//! two" are 1042, "twelve hundred thirty four" is 1234, "nineteen oh five" is 1905, "nine four one
//! oh seven" is 94107, and the words Twilio's recognition writes for digits ("for" → 4, "to"/"too"
//! → 2, "won" → 1, "ate" → 8). Order numbers and postal codes are read the same way: words say
//! numbers in chunks, and the chunks are written one after another.

/// The digit a single word stands for, including the homophones Twilio writes.
pub fn keypad_word(word: &str) -> Option<char> {
    Some(match word {
        "zero" | "oh" | "o" => '0',
        "one" | "won" => '1',
        "two" | "to" | "too" => '2',
        "three" => '3',
        "four" | "for" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" | "ate" => '8',
        "nine" => '9',
        _ => return None,
    })
}

fn teen(word: &str) -> Option<u64> {
    let teens =
        ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
    teens.iter().position(|t| *t == word).map(|i| 10 + i as u64)
}

fn tens(word: &str) -> Option<u64> {
    let tens = ["twenty", "thirty", "forty", "fourty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    let values = [20, 30, 40, 40, 50, 60, 70, 80, 90];
    tens.iter().position(|t| *t == word).map(|i| values[i])
}

/// A compound being said: "one thousand two hundred thirty" so far.
#[derive(Default)]
struct Compound {
    /// The part said before "thousand", times 1000.
    thousands: u64,
    /// The part below a thousand.
    low: u64,
    /// After "hundred"/"thousand": what follows adds to the value instead of starting anew.
    adding: bool,
    /// The last word was a tens word: a unit may still complete it ("forty" "two").
    open_tens: bool,
    said: bool,
}

impl Compound {
    fn starting(n: u64, is_tens: bool) -> Compound {
        Compound { low: n, open_tens: is_tens, said: true, ..Compound::default() }
    }

    fn flush(&mut self, out: &mut String) {
        if self.said {
            out.push_str(&(self.thousands + self.low).to_string());
        }
        *self = Compound::default();
    }

    /// Whether `n` (below 100) completes this compound rather than starting a new one. A zero
    /// never does: nobody says "fifty zero" for 50, but "fifty oh one" for 5001.
    fn takes(&self, n: u64) -> bool {
        if !self.said || n == 0 {
            return false;
        }
        if self.open_tens {
            return n < 10;
        }
        self.adding && self.low.is_multiple_of(100)
    }

    fn multiply(&mut self, word: &str) {
        let low = if self.said && (self.low > 0 || self.thousands == 0) { self.low.max(1) } else { 1 };
        if word == "hundred" {
            self.low = low * 100;
        } else {
            self.thousands = (self.thousands + if self.said { self.low.max(1) } else { 1 }) * 1000;
            self.low = 0;
        }
        self.adding = true;
        self.open_tens = false;
        self.said = true;
    }
}

/// The digits said in `words`, or `None` when no digit was said. Other words are left out
/// ("order number", "it's", the letters of an order name's prefix or suffix in "S O 1001 A"):
/// "o"/"oh" is a zero only right after a number, "to"/"for" a digit only beside one.
pub fn digits(words: &[&str]) -> Option<String> {
    let mut out = String::new();
    let mut compound = Compound::default();
    let mut after_number = false;
    for (i, word) in words.iter().enumerate() {
        let next_is_number = words.get(i + 1).is_some_and(|w| is_number_word(w));
        if word.chars().all(|c| c.is_ascii_digit()) {
            compound.flush(&mut out);
            out.push_str(word);
            after_number = true;
            continue;
        }
        if matches!(*word, "oh" | "o") && !after_number {
            // "oh, it's 1042": an interjection; "S O 1001": a letter of the name.
            continue;
        }
        if matches!(*word, "to" | "too" | "for") && !after_number && !next_is_number {
            continue; // "I'd like to…": the word, not the digit
        }
        if let Some(digit) = keypad_word(word) {
            let n = u64::from(digit as u8 - b'0');
            if compound.takes(n) {
                compound.low += n;
                compound.open_tens = false;
            } else {
                compound.flush(&mut out);
                compound = Compound::starting(n, false);
            }
            after_number = true;
            continue;
        }
        if let Some(n) = teen(word).or_else(|| tens(word)) {
            let is_tens = tens(word).is_some();
            if compound.takes(n) && !compound.open_tens {
                compound.low += n;
                compound.open_tens = is_tens;
            } else {
                compound.flush(&mut out);
                compound = Compound::starting(n, is_tens);
            }
            after_number = true;
            continue;
        }
        if matches!(*word, "hundred" | "thousand") {
            compound.multiply(word);
            after_number = true;
            continue;
        }
        if *word == "and" && compound.adding {
            continue; // "one thousand and forty two"
        }
        if matches!(*word, "double" | "triple") && next_is_number {
            // "double four" is 44: repeat the next digit.
            let times = if *word == "double" { 2 } else { 3 };
            if let Some(digit) = words.get(i + 1).and_then(|w| keypad_word(w)) {
                compound.flush(&mut out);
                out.extend(std::iter::repeat_n(digit, times - 1));
            }
            continue;
        }
        // Any other word ends the number being said: a letter of the order name's prefix or
        // suffix, "order number", "it's", "I think".
        compound.flush(&mut out);
        after_number = false;
    }
    compound.flush(&mut out);
    (!out.is_empty()).then_some(out)
}

fn is_number_word(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_digit())
        || keypad_word(word).is_some()
        || teen(word).is_some()
        || tens(word).is_some()
        || matches!(word, "hundred" | "thousand")
}
