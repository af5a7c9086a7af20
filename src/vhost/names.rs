//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags, each the prefix
//! plus 22 characters (base64url of 16 random bytes, no padding), as RabbitMQ makes them.

use crate::protocol::ShortStr;

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn generated_queue_name() -> ShortStr {
    generated_name("amq.gen-")
}

pub fn generated_consumer_tag() -> ShortStr {
    generated_name("amq.ctag-")
}

fn generated_name(prefix: &str) -> ShortStr {
    let random = fastrand::u128(..).to_be_bytes();
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    // 16 bytes = 128 bits = 21 full sextets plus 2 bits: 22 characters.
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for byte in random {
        bits = (bits << 8) | u32::from(byte);
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            name.push(char::from(BASE64URL[((bits >> bit_count) & 63) as usize]));
        }
    }
    if bit_count > 0 {
        name.push(char::from(
            BASE64URL[((bits << (6 - bit_count)) & 63) as usize],
        ));
    }
    ShortStr::copy_from_str(&name).expect("generated names are short")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_rabbitmq_shape() {
        let name = generated_queue_name();
        let text = name.to_string_lossy();
        assert!(text.starts_with("amq.gen-"));
        assert_eq!(text.len(), "amq.gen-".len() + 22);
        assert!(text["amq.gen-".len()..]
            .bytes()
            .all(|b| BASE64URL.contains(&b)));
        assert_ne!(generated_queue_name(), generated_queue_name());
        assert_eq!(generated_consumer_tag().len(), "amq.ctag-".len() + 22);
    }
}
