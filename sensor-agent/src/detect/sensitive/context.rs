//! Field-name context: what a JSON key, form/query parameter or header name says about its value.

/// What a field's name suggests its value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    None,
    Card,
    Iban,
    Bic,
    SortCode,
    Account,
    Email,
    Phone,
    Ssn,
    Nino,
    Password,
    Secret,
    /// Identifiers, references, amounts, timestamps: long digit strings here are rarely cards.
    IdLike,
}

impl Hint {
    /// The name asks for a check of the whole value (lowercase IBANs, national phone forms, ...)
    /// that the scan of its parts would not make.
    pub(crate) fn whole_value(self) -> bool {
        matches!(self, Hint::Iban | Hint::Bic | Hint::Ssn | Hint::Nino | Hint::Phone)
    }
}

/// Normalised field name: ASCII lowercase without `-`, `_`, `.`, spaces; the last 48 bytes kept.
#[derive(Clone, Copy)]
pub(crate) struct Name {
    buf: [u8; 48],
    len: usize,
    /// `classify` of the name, computed once.
    pub hint: Hint,
}

impl Name {
    pub(crate) const EMPTY: Name = Name { buf: [0; 48], len: 0, hint: Hint::None };

    pub(crate) fn new(raw: &[u8]) -> Name {
        let mut n = Name::EMPTY;
        for &b in raw {
            if matches!(b, b'-' | b'_' | b'.' | b' ') {
                continue;
            }
            if n.len == n.buf.len() {
                n.buf.copy_within(1.., 0);
                n.len -= 1;
            }
            n.buf[n.len] = b.to_ascii_lowercase();
            n.len += 1;
        }
        n.hint = classify_cached(&n);
        n
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The context a value is scanned in.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    pub hint: Hint,
    /// Normalised name (empty for free text).
    pub name: &'a [u8],
    /// An AWS access key id was seen just before (same document): a following 40-char secret
    /// shape is credible.
    pub aws_context: bool,
}

impl Field<'_> {
    pub(crate) const NONE: Field<'static> = Field { hint: Hint::None, name: &[], aws_context: false };
}

/// Slots of the per-thread classification cache (a power of two).
const CACHE_SLOTS: usize = 512;

/// [`classify`] through a small direct-mapped per-thread table: an API's traffic repeats the
/// same field names, and classifying one is some forty substring tests. A slot holds the
/// whole name, so a collision only costs a recomputation.
fn classify_cached(n: &Name) -> Hint {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<Vec<Option<Name>>> = RefCell::new(vec![None; CACHE_SLOTS]);
    }
    let name = n.as_bytes();
    // FNV-1a: cheap, and good enough to spread short identifiers.
    let hash =
        name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let slot = (hash as usize) & (CACHE_SLOTS - 1);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(hit) = cache[slot].as_ref().filter(|c| c.as_bytes() == name) {
            return hit.hint;
        }
        let hint = classify(name);
        cache[slot] = Some(Name { hint, ..*n });
        hint
    })
}

fn has(name: &[u8], part: &[u8]) -> bool {
    name.len() >= part.len() && name.windows(part.len()).any(|w| w == part)
}

/// Classify a normalised field name.
pub(crate) fn classify(name: &[u8]) -> Hint {
    if name.is_empty() {
        return Hint::None;
    }
    let eq = |s: &[u8]| name == s;
    let ends = |s: &[u8]| name.ends_with(s);
    if has(name, b"iban") {
        return Hint::Iban;
    }
    if eq(b"bic")
        || eq(b"swift")
        || eq(b"bicfi")
        || ends(b"swiftcode")
        || ends(b"swiftbic")
        || ends(b"biccode")
    {
        return Hint::Bic;
    }
    if has(name, b"sortcode") || eq(b"sortcd") || eq(b"bsb") {
        return Hint::SortCode;
    }
    if ends(b"accountnumber") || ends(b"accountno") || ends(b"acctnumber") || ends(b"acctno") || eq(b"accno")
    {
        return Hint::Account;
    }
    if eq(b"pan")
        || ends(b"cardpan")
        || has(name, b"cardnumber")
        || has(name, b"cardnum")
        || ends(b"cardno")
        || has(name, b"creditcard")
        || has(name, b"debitcard")
        || eq(b"ccnumber")
        || eq(b"ccnum")
        || eq(b"ccno")
        || eq(b"card")
        || eq(b"cc")
        || eq(b"primaryaccountnumber")
    {
        return Hint::Card;
    }
    if has(name, b"password") || has(name, b"passwd") || has(name, b"passphrase") || eq(b"pwd") || eq(b"pass")
    {
        if ends(b"hint")
            || ends(b"policy")
            || ends(b"strength")
            || ends(b"length")
            || ends(b"expiry")
            || ends(b"expires")
            || ends(b"at")
            || ends(b"date")
            || ends(b"required")
            || ends(b"type")
        {
            return Hint::None;
        }
        return Hint::Password;
    }
    if is_secret_name(name) {
        return Hint::Secret;
    }
    if has(name, b"email") || eq(b"mail") || ends(b"emailaddress") {
        return Hint::Email;
    }
    if has(name, b"phone")
        || has(name, b"mobile")
        || eq(b"tel")
        || ends(b"telephone")
        || has(name, b"msisdn")
        || eq(b"cell")
        || ends(b"cellnumber")
        || eq(b"fax")
    {
        return Hint::Phone;
    }
    if eq(b"ssn") || has(name, b"socialsecurity") || ends(b"ssn") {
        return Hint::Ssn;
    }
    if eq(b"nino") || has(name, b"nationalinsurance") || eq(b"ninumber") || eq(b"nin") {
        return Hint::Nino;
    }
    if is_id_like(name) {
        return Hint::IdLike;
    }
    Hint::None
}

fn is_secret_name(name: &[u8]) -> bool {
    let ends = |s: &[u8]| name.ends_with(s);
    if has(name, b"page") || has(name, b"cursor") || has(name, b"continuation") || ends(b"type") {
        return false;
    }
    has(name, b"secret")
        || ends(b"token")
        || ends(b"apikey")
        || ends(b"accesskey")
        || ends(b"privatekey")
        || ends(b"secretkey")
        || ends(b"signingkey")
        || ends(b"encryptionkey")
        || ends(b"credential")
        || ends(b"credentials")
        || name == b"key"
        || name == b"sig"
        || name == b"signature"
        || name == b"auth"
        || name == b"apitoken"
        || name == b"sessionid"
}

fn is_id_like(name: &[u8]) -> bool {
    let ends = |s: &[u8]| name.ends_with(s);
    ends(b"id")
        || ends(b"ids")
        || ends(b"uuid")
        || ends(b"guid")
        || ends(b"ref")
        || ends(b"reference")
        || has(name, b"order")
        || has(name, b"invoice")
        || has(name, b"transaction")
        || has(name, b"tracking")
        || has(name, b"timestamp")
        || ends(b"time")
        || ends(b"ts")
        || ends(b"nonce")
        || ends(b"seq")
        || ends(b"sequence")
        || ends(b"amount")
        || ends(b"total")
        || ends(b"count")
        || ends(b"version")
        || ends(b"hash")
        || ends(b"checksum")
        || ends(b"size")
        || ends(b"bytes")
}

/// Banking words near a candidate (for BIC in free text): case-insensitive.
pub(crate) fn banking_words_near(text: &[u8], start: usize, end: usize) -> bool {
    const WORDS: &[&[u8]] =
        &[b"bic", b"swift", b"iban", b"bank", b"sort code", b"routing", b"account", b"beneficiary"];
    let lo = start.saturating_sub(64);
    let hi = (end + 64).min(text.len());
    let mut window = [0u8; 160];
    let mut n = 0;
    for (i, &b) in text[lo..hi].iter().enumerate() {
        // The candidate itself is excluded: "BANKDEFF" must not be its own context.
        if (lo + i >= start && lo + i < end) || n == window.len() {
            continue;
        }
        window[n] = b.to_ascii_lowercase();
        n += 1;
    }
    WORDS.iter().any(|w| has(&window[..n], w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(raw: &str) -> Hint {
        classify(Name::new(raw.as_bytes()).as_bytes())
    }

    #[test]
    fn names_classify() {
        assert_eq!(c("cardNumber"), Hint::Card);
        assert_eq!(c("card_number"), Hint::Card);
        assert_eq!(c("pan"), Hint::Card);
        assert_eq!(c("orderId"), Hint::IdLike);
        assert_eq!(c("payer_iban"), Hint::Iban);
        assert_eq!(c("BIC"), Hint::Bic);
        assert_eq!(c("sortCode"), Hint::SortCode);
        assert_eq!(c("accountNumber"), Hint::Account);
        assert_eq!(c("password"), Hint::Password);
        assert_eq!(c("new-password"), Hint::Password);
        assert_eq!(c("passwordHint"), Hint::None);
        assert_eq!(c("client_secret"), Hint::Secret);
        assert_eq!(c("access_token"), Hint::Secret);
        assert_eq!(c("token_type"), Hint::None);
        assert_eq!(c("nextPageToken"), Hint::None);
        assert_eq!(c("x-api-key"), Hint::Secret);
        assert_eq!(c("mobilePhone"), Hint::Phone);
        assert_eq!(c("ssn"), Hint::Ssn);
        assert_eq!(c("nino"), Hint::Nino);
        assert_eq!(c("email"), Hint::Email);
        assert_eq!(c("value"), Hint::None);
        assert_eq!(c(""), Hint::None);
    }

    #[test]
    fn long_names_keep_their_end() {
        let long = format!("{}Password", "x".repeat(100));
        assert_eq!(c(&long), Hint::Password);
    }

    #[test]
    fn banking_context() {
        let t = b"please pay to bank DEUTDEFF today";
        assert!(banking_words_near(t, 19, 27));
        let t = b"hello ABCDEFGH world";
        assert!(!banking_words_near(t, 6, 14));
    }
}
