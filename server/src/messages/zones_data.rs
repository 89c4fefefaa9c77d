//! Static lookup data for `quiet`: US ZIP prefix → zone and NANP area code → zone.
//!
//! Both tables answer "which local clock governs this recipient?". A prefix or
//! area code that is missing, unassigned, military or non-US is simply absent,
//! so the caller falls back to a less specific source (ZIP → area code → the
//! most restrictive all-states window). Absence is always safe; a wrong zone is
//! not, so entries are only listed where the zone is known. Where one prefix or
//! area code spans two zones the zone of most of its population is used and
//! the split is noted beside the entry.
//!
//! Checked (not generated) against PyPI data: `zipcodes` 3.0.0 (an IANA zone
//! per ZIP; its ZIP3 majority is by count of ZIPs, as it has no population,
//! so where that count and the population centre disagree the entry says so)
//! and `phonenumbers` 9.0.43 (libphonenumber's time zones per NPA and NPA-NXX).
//! Overlays too new for that `phonenumbers` were checked against the state
//! regulators' announcements. `tools/check_zones.py` reruns the comparison.

use super::quiet::UsZone;
use super::quiet::UsZone::{
    Alaska as AK, Arizona as AZ, Central as C, Eastern as E, Guam as GU, Hawaii as HI,
    Mountain as M, Pacific as P, PuertoRico as PR, Samoa as SM,
};

/// Inclusive ranges of 3-digit ZIP prefixes, sorted and non-overlapping.
///
/// Gaps are deliberate: prefixes USPS has never assigned (000–004, 213, 269,
/// 343, 345, 348, 353, 419, 428–429, 517–519, 529, 533, 536, 552, 568, 578–579,
/// 589, 621, 632, 642–643, 659, 663, 682, 694–699, 702, 709, 715, 732, 742,
/// 771, 817–819, 839, 848–849, 854, 858, 861–862, 866–869, 872, 886–887, 892,
/// 896, 899, 909, 929, 987), prefixes that hold no home addresses (569 USPS
/// Parcel Return Service; 888 only 88888, the North Pole mail ZIP) and military
/// post offices (AE 090–099, AA 340, AP 962–966), whose recipients may be
/// anywhere.
pub(super) const ZIP3_RANGES: &[(u16, u16, UsZone)] = &[
    (5, 5, E),     // NY: Holtsville IRS
    (6, 9, PR), // PR 006–007, 009; USVI 008 (America/St_Thomas is a tzdb link to America/Puerto_Rico: AST, no DST)
    (10, 89, E), // New England, NJ
    (100, 212, E), // NY, PA, DE, DC, VA (201), MD
    (214, 268, E), // MD, VA, WV
    (270, 323, E), // NC, SC, GA, FL; 323 Tallahassee is Eastern
    // FL panhandle west of the Apalachicola river is Central: 324 Panama City
    // (Gulf county around Port St. Joe is Eastern, the minority), 325 Pensacola.
    (324, 325, C),
    (326, 339, E),
    (341, 342, E),
    (344, 344, E),
    (346, 347, E),
    (349, 349, E),
    (350, 352, C), // AL (Phenix City, 368, unofficially keeps Eastern: the minority)
    (354, 372, C), // AL, TN 370–372 (Nashville)
    (373, 374, E), // TN Chattanooga area (Marion/Grundy counties Central: minority)
    (375, 375, C), // TN Memphis
    (376, 379, E), // TN Johnson City, Knoxville
    (380, 397, C), // TN Memphis/Jackson/Columbia/Cookeville, MS
    (398, 399, E), // GA
    (400, 418, E), // KY east and centre
    // KY west is Central: 420 Paducah, 421–422 Bowling Green, 423 Owensboro,
    // 424 Henderson. 425–427 (Somerset, Elizabethtown) are mostly Eastern by
    // population, though Adair/Russell/Clinton counties inside them are
    // Central. 427 splits: most of its ZIPs (Grayson, Hart, Green, Adair,
    // Cumberland) are Central, most of its people (Hardin, Larue, Taylor)
    // Eastern.
    (420, 424, C),
    (425, 427, E),
    (430, 462, E), // OH, IN Indianapolis
    (463, 464, C), // IN north-west (Gary, Lake/Porter counties) is Central
    (465, 475, E), // IN (475 Washington: Gibson/Perry/Spencer Central, minority)
    (476, 477, C), // IN south-west (Evansville) is Central
    // IN 478–479, MI. The UP prefixes 498–499 are mostly Eastern (Marquette,
    // Escanaba, Houghton); Gogebic, Iron, Dickinson and Menominee counties,
    // on the Wisconsin border, are Central.
    (478, 499, E),
    (500, 516, C), // IA
    (520, 528, C), // IA
    (530, 532, C), // WI
    (534, 535, C), // WI
    (537, 551, C), // WI, MN
    (553, 567, C), // MN
    (570, 575, C), // SD east; 575 Pierre is mostly Central
    // SD west of the Missouri: 576 Mobridge (only Walworth and Campbell
    // counties are Central), 577 Rapid City.
    (576, 577, M),
    (580, 585, C), // ND
    (586, 586, M), // ND south-west: Dickinson
    (587, 588, C), // ND Minot, Williston (Williams county is Central)
    (590, 599, M), // MT
    (600, 620, C), // IL
    (622, 631, C), // IL, MO
    (633, 641, C), // MO
    (644, 658, C), // MO
    // KS: Sherman, Wallace, Greeley and Hamilton counties (in 677/678) are
    // Mountain, a small minority of those prefixes.
    (660, 662, C),
    (664, 681, C), // KS, NE Omaha
    // NE: 690 McCook and 691 North Platte are mostly Central by population
    // (Keith, Perkins, Chase, Dundy counties are Mountain). 691 splits: most
    // of its ZIPs (Ogallala, Sidney, Kimball, the Sandhills) are Mountain,
    // but North Platte's Lincoln county alone outweighs them.
    (683, 692, C),
    (693, 693, M), // NE panhandle: Alliance, Scottsbluff
    (700, 701, C), // LA
    (703, 708, C), // LA
    (710, 714, C), // LA
    (716, 731, C), // AR, OK
    (733, 741, C), // TX 733 Austin, OK
    (743, 770, C), // OK, TX
    (772, 797, C), // TX
    // TX El Paso and Hudspeth counties are Mountain. 798 splits: most of its
    // ZIPs (Big Bend: Alpine, Marfa, Presidio, Van Horn) are Central, most of
    // its people (Socorro, Horizon City, San Elizario) Mountain.
    (798, 799, M),
    (800, 816, M), // CO
    (820, 834, M), // WY, ID south-east (Pocatello, Twin Falls, Idaho Falls)
    (835, 835, P), // ID Lewiston: north of the Salmon river Idaho is Pacific
    (836, 837, M), // ID Boise
    (838, 838, P), // ID panhandle (Coeur d'Alene), served from Spokane
    (840, 847, M), // UT
    // AZ does not observe DST (America/Phoenix) except the Navajo Nation,
    // which follows America/Denver; the Hopi reservation inside it does not.
    (850, 853, AZ), // 851 Apache Junction, San Tan Valley
    (855, 857, AZ),
    (859, 860, AZ), // 860 holds Tuba City/Kayenta (Navajo), but Flagstaff dominates
    (863, 864, AZ),
    // 865 (Window Rock, Chinle, Ganado, Fort Defiance) is almost entirely the
    // Navajo Nation, which observes DST: by the majority rule it is Mountain.
    (865, 865, M),
    (870, 871, M), // NM Albuquerque (872 is unassigned)
    (873, 884, M), // NM (876 holds only 87654, Spaceport City)
    (885, 885, M), // TX El Paso
    // NV is Pacific; West Wendover (89883) keeps Mountain, see ZIP5_OVERRIDES.
    (889, 891, P),
    (893, 895, P),
    (897, 898, P),
    (900, 908, P),  // CA
    (910, 928, P),  // CA
    (930, 961, P),  // CA
    (967, 968, HI), // HI; American Samoa's 96799 is an override
    (969, 969, GU), // Guam and the Northern Marianas (ChST); see overrides
    (970, 978, P),  // OR
    (979, 979, M),  // OR Malheur county (Ontario) follows Boise: Mountain
    (980, 986, P),  // WA
    (988, 994, P),  // WA
    // AK: America/Anchorage. The western Aleutians (Adak, Atka; a few hundred
    // people in 995) use America/Adak, an hour behind.
    (995, 999, AK),
];

/// Inclusive ranges of full 5-digit ZIPs whose zone differs from their prefix.
/// `None` means the ZIP is outside every zone we model (foreign states served
/// by USPS), so the caller must fall back rather than guess.
pub(super) const ZIP5_OVERRIDES: &[(u32, u32, Option<UsZone>)] = &[
    // West Wendover NV officially observes Mountain time (`zipcodes` still
    // lists it as America/Los_Angeles).
    (89883, 89883, Some(M)),
    (96799, 96799, Some(SM)), // American Samoa (Pago Pago, UTC-11)
    (96898, 96898, None),     // Wake Island (UTC+12)
    (96939, 96940, None),     // Palau (UTC+9)
    (96941, 96944, None),     // Micronesia (UTC+10/+11)
    (96960, 96960, None),     // Marshall Islands (UTC+12)
    (96970, 96970, None),     // Marshall Islands (UTC+12)
];

/// US area codes by state or territory, as assigned by NANPA. Canadian and
/// non-US Caribbean codes, toll-free (8YY), 5XX/6XX non-geographic and 900
/// codes are absent on purpose: they say nothing about the recipient's clock.
pub(super) const AREA_CODES: &[(UsZone, &[u16])] = &[
    (C, &[205, 251, 256, 334, 659, 938]), // AL (Phenix City area unofficially Eastern)
    (AK, &[907]),                         // AK (Adak on America/Adak: a few hundred people)
    (AZ, &[480, 520, 602, 623, 928]), // AZ (928 holds the Navajo Nation, DST; Flagstaff etc. dominate)
    (C, &[327, 479, 501, 870]),       // AR
    (
        P,
        &[
            209, 213, 279, 310, 323, 341, 350, 369, 408, 415, 424, 442, 510, 530, 559, 562, 619,
            626, 628, 650, 657, 661, 669, 707, 714, 738, 747, 760, 805, 818, 820, 831, 840, 858,
            909, 916, 925, 949, 951,
        ],
    ), // CA
    (M, &[303, 719, 720, 748, 970, 983]), // CO
    (E, &[203, 475, 860, 959]),       // CT
    (E, &[302]),                      // DE
    (E, &[202, 771]),                 // DC
    (
        E,
        &[
            239, 305, 321, 324, 352, 386, 407, 561, 645, 656, 689, 727, 728, 754, 772, 786, 813,
            863, 904, 941, 954,
        ],
    ), // FL peninsula
    // FL panhandle: 850/448 run from Pensacola (Central) to Tallahassee
    // (Eastern); most of their population is west of the Apalachicola.
    (C, &[448, 850]),
    (E, &[229, 404, 470, 478, 678, 706, 762, 770, 912, 943]), // GA
    (HI, &[808]),                                             // HI
    (M, &[208, 986]), // ID (the panhandle and Lewiston, Pacific, are the minority)
    (
        C,
        &[
            217, 224, 309, 312, 331, 447, 464, 618, 630, 708, 730, 773, 779, 815, 847, 861, 872,
        ],
    ), // IL (861 overlays 309 since 2023)
    (C, &[219]),      // IN north-west (Lake, Porter, LaPorte, Jasper, Newton, Starke): Central
    // IN elsewhere; 812/930 include Evansville (Central), a minority of them.
    (E, &[260, 317, 463, 574, 765, 812, 930]),
    (C, &[319, 515, 563, 641, 712]),                     // IA
    (C, &[316, 620, 785, 913]),                          // KS (four western counties Mountain)
    (C, &[270, 364]),      // KY west (Elizabethtown area is Eastern: minority)
    (E, &[502, 606, 859]), // KY east
    (C, &[225, 318, 337, 504, 985]), // LA
    (E, &[207]),           // ME
    (E, &[227, 240, 301, 410, 443, 667]), // MD
    (E, &[339, 351, 413, 508, 617, 774, 781, 857, 978]), // MA
    // MI; the UP's 906 is mostly Eastern (four border counties Central).
    (
        E,
        &[231, 248, 269, 313, 517, 586, 616, 734, 810, 906, 947, 989],
    ),
    (C, &[218, 320, 507, 612, 651, 763, 924, 952]), // MN (924 overlays 507 since 2025)
    (C, &[228, 601, 662, 769]),                     // MS
    (C, &[235, 314, 417, 557, 573, 636, 660, 816, 975]), // MO
    (M, &[406]),                                    // MT
    (C, &[308, 402, 531]),                          // NE (308's panhandle is Mountain: minority)
    (P, &[702, 725, 775]),                          // NV
    (E, &[603]),                                    // NH
    (E, &[201, 551, 609, 640, 732, 848, 856, 862, 908, 973]), // NJ
    (M, &[505, 575]),                               // NM
    (
        E,
        &[
            212, 315, 329, 332, 347, 363, 516, 518, 585, 607, 631, 646, 680, 716, 718, 838, 845,
            914, 917, 929, 934,
        ],
    ), // NY
    (E, &[252, 336, 472, 704, 743, 828, 910, 919, 980, 984]), // NC
    (C, &[701]),                                    // ND (the south-west is Mountain: minority)
    (
        E,
        &[
            216, 220, 234, 283, 326, 330, 380, 419, 436, 440, 513, 567, 614, 740, 937,
        ],
    ), // OH (436 overlays 440 since 2024)
    (C, &[405, 539, 572, 580, 918]),                // OK
    (P, &[458, 503, 541, 971]), // OR (541 includes Malheur county, Mountain: minority)
    (
        E,
        &[
            215, 223, 267, 272, 412, 445, 484, 570, 582, 610, 717, 724, 814, 835, 878,
        ],
    ), // PA
    (E, &[401]),                // RI
    (E, &[803, 821, 839, 843, 854, 864]), // SC
    (C, &[605]),                // SD (west river is Mountain: minority)
    (E, &[423, 865]),           // TN east
    (C, &[615, 629, 731, 901, 931]), // TN middle and west
    (
        C,
        &[
            210, 214, 254, 281, 325, 346, 361, 409, 430, 432, 469, 512, 682, 713, 726, 737, 806,
            817, 830, 832, 903, 936, 940, 945, 956, 972, 979,
        ],
    ), // TX
    (M, &[915]),                // TX El Paso
    (M, &[385, 435, 801]),      // UT
    (E, &[802]),                // VT
    (E, &[276, 434, 540, 571, 686, 703, 757, 804, 826, 948]), // VA
    (P, &[206, 253, 360, 425, 509, 564]), // WA
    (E, &[304, 681]),           // WV
    (C, &[262, 274, 353, 414, 534, 608, 715, 920]), // WI
    (M, &[307]),                // WY
    (PR, &[787, 939]),          // Puerto Rico
    (PR, &[340]),               // US Virgin Islands: same clock as Puerto Rico (AST, no DST)
    (GU, &[671]),               // Guam
    (GU, &[670]),               // Northern Mariana Islands: ChST like Guam
    (SM, &[684]),               // American Samoa
];

#[cfg(test)]
mod tests {
    use super::super::quiet::UsZone::*;
    use super::super::quiet::{zone_for_phone, zone_for_zip};
    use super::*;

    #[test]
    fn zip3_ranges_are_sorted_disjoint_and_in_range() {
        for &(lo, hi, _) in ZIP3_RANGES {
            assert!(lo <= hi && hi <= 999, "{lo}-{hi}");
        }
        for pair in ZIP3_RANGES.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{:?} overlaps {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn military_and_never_assigned_prefixes_have_no_zone() {
        let unmapped = [
            0, 1, 2, 3, 4, 99, 213, 269, 340, 353, 419, 569, 694, 699, 987,
        ];
        let military = (90..=98).chain(962..=966);
        for prefix in unmapped.into_iter().chain(military) {
            assert!(
                !ZIP3_RANGES
                    .iter()
                    .any(|&(lo, hi, _)| (lo..=hi).contains(&prefix)),
                "{prefix:03}"
            );
        }
    }

    #[test]
    fn every_state_block_is_covered() {
        // One well-known assigned prefix per state/territory must resolve.
        let sample: [u16; 30] = [
            10, 60, 100, 150, 200, 220, 270, 300, 330, 350, 370, 386, 400, 430, 460, 480, 500, 530,
            550, 590, 600, 630, 660, 680, 700, 716, 750, 800, 900, 995,
        ];
        for prefix in sample {
            assert!(
                ZIP3_RANGES
                    .iter()
                    .any(|&(lo, hi, _)| (lo..=hi).contains(&prefix)),
                "{prefix:03}"
            );
        }
    }

    #[test]
    fn zip5_overrides_are_sorted_and_disjoint() {
        for pair in ZIP5_OVERRIDES.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0);
        }
    }

    #[test]
    fn area_codes_are_unique_geographic_nanp_codes() {
        let mut seen = Vec::new();
        for (_, codes) in AREA_CODES {
            for &npa in *codes {
                assert!((200..=999).contains(&npa), "{npa}");
                // N11 service codes and N9X expansion codes are never areas.
                assert!(npa % 100 != 11 && (npa / 10) % 10 != 9, "{npa}");
                assert!(!seen.contains(&npa), "duplicate {npa}");
                seen.push(npa);
            }
        }
        for not_us in [
            800, 833, 844, 855, 866, 877, 888, 900, 204, 416, 604, 876, 809,
        ] {
            assert!(!seen.contains(&not_us), "{not_us}");
        }
        assert!(seen.len() > 330, "only {} area codes", seen.len());
    }

    #[test]
    fn known_zips() {
        for (zip, zone) in [
            ("10001", Eastern),    // New York
            ("60601", Central),    // Chicago
            ("80202", Mountain),   // Denver
            ("85001", Arizona),    // Phoenix
            ("94103", Pacific),    // San Francisco
            ("99501", Alaska),     // Anchorage
            ("96813", Hawaii),     // Honolulu
            ("00901", PuertoRico), // San Juan
            ("00802", PuertoRico), // St Thomas, USVI
            ("79901", Mountain),   // El Paso
            ("32501", Central),    // Pensacola
            ("32301", Eastern),    // Tallahassee
            ("46402", Central),    // Gary
            ("47708", Central),    // Evansville
            ("46204", Eastern),    // Indianapolis
            ("83814", Pacific),    // Coeur d'Alene
            ("83702", Mountain),   // Boise
            ("97914", Mountain),   // Ontario OR
            ("57701", Mountain),   // Rapid City
            ("42001", Central),    // Paducah
            ("37902", Eastern),    // Knoxville
            ("37201", Central),    // Nashville
            ("49855", Eastern),    // Marquette
            ("86515", Mountain),   // Window Rock (Navajo Nation)
            ("89883", Mountain),   // West Wendover
            ("96910", Guam),       // Hagåtña
            ("96950", Guam),       // Saipan
            ("96799", Samoa),      // Pago Pago
            ("00501", Eastern),    // Holtsville
        ] {
            assert_eq!(zone_for_zip(zip), Some(zone), "{zip}");
        }
    }

    #[test]
    fn known_area_codes() {
        for (npa, zone) in [
            (212, Eastern),
            (312, Central),
            (303, Mountain),
            (602, Arizona),
            (415, Pacific),
            (907, Alaska),
            (808, Hawaii),
            (787, PuertoRico),
            (939, PuertoRico),
            (340, PuertoRico),
            (915, Mountain),
            (850, Central),
            (219, Central),
            (812, Eastern),
            (270, Central),
            (423, Eastern),
            (671, Guam),
            (670, Guam),
            (684, Samoa),
            (202, Eastern),
        ] {
            assert_eq!(
                zone_for_phone(&format!("+1{npa}5551234")),
                Some(zone),
                "{npa}"
            );
        }
    }
}
