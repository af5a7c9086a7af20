//! Line colours and dashes. The colours are Okabe and Ito's, which readers with any common
//! colour-vision deficiency still tell apart; each also has its own dash pattern so the lines
//! stay distinct printed in grey.

use super::svg::Stroke;

/// Blue, vermillion, bluish green, reddish purple, orange, sky blue, black (yellow is left out:
/// it vanishes on white).
const COLORS: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];
const DASHES: [&str; 7] = ["", "9 4", "2 3", "12 3 3 3", "5 5", "1 4", "16 4"];

/// The `index`-th stroke: a colour and a dash pattern that differ from every other index's
/// (up to 49 lines).
pub fn stroke(index: usize) -> Stroke {
    Stroke {
        color: COLORS[index % COLORS.len()],
        width: 2.0,
        dash: DASHES[(index + index / COLORS.len()) % DASHES.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_differ_in_colour_and_dash() {
        for a in 0..7 {
            for b in a + 1..7 {
                assert_ne!(stroke(a).color, stroke(b).color);
                assert_ne!(stroke(a).dash, stroke(b).dash);
            }
        }
        assert_ne!(stroke(0), stroke(7), "past the colours the dashes shift");
    }
}
