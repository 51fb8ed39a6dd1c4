use super::*;
use crate::sms::split::capacities;
use crate::sms::text::gsm_septets;
use proptest::prelude::*;

fn texts<'a>(split: &Split<'a>) -> Vec<&'a str> {
    split
        .chunks
        .iter()
        .map(|c| match c {
            Chunk::Text(t) => *t,
            Chunk::Octets(_) => panic!("octets in a text split"),
        })
        .collect()
}

#[test]
fn single_sm_limits_and_part_capacities() {
    let a160 = "a".repeat(160);
    assert_eq!(split_text(&a160, RefWidth::Eight).unwrap().total(), 1);
    let a161 = "a".repeat(161);
    let s = split_text(&a161, RefWidth::Eight).unwrap();
    assert_eq!(s.coding, PartCoding::Gsm);
    assert_eq!(
        texts(&s).iter().map(|t| t.len()).collect::<Vec<_>>(),
        [153, 8]
    );
    let s = split_text(&a161, RefWidth::Sixteen).unwrap();
    assert_eq!(
        texts(&s).iter().map(|t| t.len()).collect::<Vec<_>>(),
        [152, 9]
    );

    let u70 = "ж".repeat(70);
    assert_eq!(split_text(&u70, RefWidth::Eight).unwrap().total(), 1);
    let u71 = "ж".repeat(71);
    let s = split_text(&u71, RefWidth::Eight).unwrap();
    assert_eq!(s.coding, PartCoding::Ucs2);
    let counts: Vec<usize> = texts(&s).iter().map(|t| t.chars().count()).collect();
    assert_eq!(counts, [67, 4]);

    let b = [0u8; 141];
    let s = split_binary(&b, RefWidth::Eight).unwrap();
    assert_eq!(
        s.chunks,
        [Chunk::Octets(&b[..134]), Chunk::Octets(&b[134..])]
    );
    assert_eq!(split_binary(&b[..140], RefWidth::Eight).unwrap().total(), 1);
    assert_eq!(
        split_binary(&b, RefWidth::Sixteen).unwrap().chunks[0],
        Chunk::Octets(&b[..133])
    );
}

#[test]
fn an_escape_pair_or_a_surrogate_pair_is_never_split() {
    // 152 septets then '€' (two septets): the euro goes whole into part 2.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let s = split_text(&text, RefWidth::Eight).unwrap();
    let t = texts(&s);
    assert_eq!(t[0], "a".repeat(152));
    assert!(t[1].starts_with('€'));
    // 66 UCS-2 units then an emoji (a surrogate pair): it goes whole into part 2.
    let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
    let s = split_text(&text, RefWidth::Eight).unwrap();
    let t = texts(&s);
    assert_eq!(t[0], "ж".repeat(66));
    assert!(t[1].starts_with('😀'));
}

#[test]
fn parts_needed_for_typical_texts_and_the_limit() {
    assert_eq!(parts_needed(""), Ok(1));
    assert_eq!(parts_needed("hello"), Ok(1));
    assert_eq!(parts_needed(&"x".repeat(301)), Ok(2));
    assert_eq!(parts_needed(&"x".repeat(306)), Ok(2));
    assert_eq!(parts_needed(&"x".repeat(307)), Ok(3));
    assert_eq!(parts_needed(&"{".repeat(80)), Ok(1)); // 160 septets
    assert_eq!(parts_needed(&"{".repeat(81)), Ok(2));
    assert_eq!(parts_needed(&"ж".repeat(134)), Ok(2));
    assert_eq!(parts_needed(&"x".repeat(153 * 255)), Ok(255));
    assert_eq!(
        parts_needed(&"x".repeat(153 * 255 + 1)),
        Err(ConcatError::TooManyParts { parts: 256 })
    );
    assert_eq!(
        split_binary(&[0; 134 * 255 + 1], RefWidth::Eight),
        Err(ConcatError::TooManyParts { parts: 256 })
    );
}

#[test]
fn headers_round_trip_and_bad_ones_are_not_concatenation() {
    for (r, width) in [(0x00AB, RefWidth::Eight), (0xBEEF, RefWidth::Sixteen)] {
        let h = concat_udh(r, 3, 2, width);
        assert_eq!(h.len(), width.udh_len());
        let mut ud = h.clone();
        ud.extend_from_slice(b"data");
        let udh = parse_udh(&ud).unwrap();
        assert_eq!(udh.len, h.len());
        assert_eq!(udh.part, Some(Part::new(r, 3, 2).unwrap()));
        assert!(!udh.other_elements);
    }
    // A port element before the concatenation element.
    let ud = [11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 3, 7, 2, 1];
    let udh = parse_udh(&ud).unwrap();
    assert_eq!(udh.part, Some(Part::new(7, 2, 1).unwrap()));
    assert!(udh.other_elements);
    // Index 0, index above total, total 0: not concatenation, the header still reads.
    for bad in [[5, 0, 3, 1, 2, 0], [5, 0, 3, 1, 2, 3], [5, 0, 3, 1, 0, 0]] {
        assert_eq!(parse_udh(&bad).unwrap().part, None);
    }
    // Wrong element length for IEI 0: ignored.
    assert_eq!(parse_udh(&[4, 0, 2, 1, 2]).unwrap().part, None);
    // Lengths running past the data: malformed.
    assert_eq!(parse_udh(&[]), None);
    assert_eq!(parse_udh(&[6, 0, 3, 1, 2, 1]), None);
    assert_eq!(parse_udh(&[3, 0, 3, 1]), None);
}

#[test]
fn references_differ_per_destination_for_consecutive_messages() {
    let mut refs = ReferenceAllocator::new();
    let a = Address::new("+4670000001").unwrap();
    let b = Address::new("+4670000002").unwrap();
    let a1 = refs.next(&a, RefWidth::Eight);
    let b1 = refs.next(&b, RefWidth::Eight);
    let a2 = refs.next(&a, RefWidth::Eight);
    assert_ne!(a1, a2);
    let _ = b1;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..256 {
        assert!(seen.insert(refs.next(&a, RefWidth::Eight)));
    }
    let wide: std::collections::HashSet<u16> = (0..1000)
        .map(|_| refs.next(&b, RefWidth::Sixteen))
        .collect();
    assert_eq!(wide.len(), 1000);
}

/// Text drawn from what matters to the split: ASCII, GSM extension characters,
/// GSM letters outside ASCII, other BMP characters, and characters beyond the BMP.
fn sms_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => prop::sample::select(vec!['€', '{', '}', '[', ']', '~', '\\', '|', '^']),
        1 => prop::sample::select(vec!['é', 'Δ', 'ß', '@', '£']),
        1 => prop::sample::select(vec!['ж', '中', 'ą']),
        1 => prop::sample::select(vec!['😀', '𝄞']),
    ];
    prop_oneof![
        prop::collection::vec(c.clone(), 0..700),
        // GSM only, around the part boundaries.
        prop::collection::vec(
            prop_oneof![4 => proptest::char::range('a', 'z'), 1 => Just('€')],
            140..480
        ),
    ]
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn any_text_splits_into_fitting_parts_that_join_to_it(text in sms_text(), wide in any::<bool>()) {
        let width = if wide { RefWidth::Sixteen } else { RefWidth::Eight };
        let split = split_text(&text, width).unwrap();
        let parts = texts(&split);
        prop_assert_eq!(parts.concat(), text.clone());
        prop_assert_eq!(parts_needed(&text).unwrap(), split_text(&text, RefWidth::Eight).unwrap().total());
        let (single, per_part) = capacities(split.coding, width);
        let measure = |t: &str| match split.coding {
            PartCoding::Gsm => gsm_septets(t).unwrap(),
            _ => t.encode_utf16().count(),
        };
        if parts.len() == 1 {
            prop_assert!(measure(parts[0]) <= single);
        } else {
            prop_assert!(measure(&text) > single);
            for p in &parts {
                prop_assert!(!p.is_empty());
                prop_assert!(measure(p) <= per_part);
            }
            // Every part but the last is full but for at most one character.
            for p in &parts[..parts.len() - 1] {
                prop_assert!(measure(p) + 2 > per_part);
            }
        }
        prop_assert_eq!(split.coding == PartCoding::Gsm, gsm_septets(&text).is_some());
    }

    #[test]
    fn parse_udh_never_panics(data in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Some(udh) = parse_udh(&data) {
            prop_assert!(udh.len <= data.len());
        }
    }
}

/// The figures the README gives for typical texts ("Parts per text").
#[test]
fn parts_for_the_readme_texts() {
    let gsm_160 = "a".repeat(160);
    let gsm_161 = "a".repeat(161);
    let ucs2_70 = "ж".repeat(70);
    let ucs2_71 = "ж".repeat(71);
    // Every tenth character a euro sign: 450 plain + 50 escaped (two septets each).
    let euro_500: String = (0..500)
        .map(|i| if i % 10 == 9 { '€' } else { 'a' })
        .collect();
    // One emoji (two UTF-16 units) makes the whole text UCS-2.
    let emoji_500: String = "a".repeat(499) + "🙂";
    let figures: Vec<(&str, usize, usize)> = [
        ("160 GSM", &gsm_160),
        ("161 GSM", &gsm_161),
        ("70 UCS-2", &ucs2_70),
        ("71 UCS-2", &ucs2_71),
        ("500 with 50 €", &euro_500),
        ("500 with an emoji", &emoji_500),
    ]
    .iter()
    .map(|(name, text)| (*name, text.chars().count(), parts_needed(text).unwrap()))
    .collect();
    println!("{figures:?}");
    let parts: Vec<usize> = figures.iter().map(|f| f.2).collect();
    assert_eq!(parts, [1, 2, 1, 2, 4, 8]);
    assert_eq!(emoji_500.chars().count(), 500);
}
