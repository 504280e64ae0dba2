//! MQTT 3.1.1 and 5.0 on one listener: the CONNECT packet's protocol level picks
//! rumqttd's v4 or v5 codec for the rest of the connection.

use bytes::BytesMut;
use rumqttd::protocol::{v4::V4, v5::V5, Error as ProtocolError, Packet, Protocol as _};

/// The codec of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniff {
    /// More bytes are needed.
    NeedMore,
    Codec(Codec),
    /// Not an MQTT 3.1.1 or 5.0 CONNECT.
    Refused,
}

/// Reads the protocol level from a CONNECT packet's variable header.
pub fn sniff(buf: &[u8]) -> Sniff {
    let Some(&first) = buf.first() else {
        return Sniff::NeedMore;
    };
    if first != 0x10 {
        return Sniff::Refused;
    }
    // Remaining length: 1 to 4 bytes, 7 bits each.
    let mut pos = 1;
    loop {
        let Some(&b) = buf.get(pos) else {
            return Sniff::NeedMore;
        };
        pos += 1;
        if b & 0x80 == 0 {
            break;
        }
        if pos > 4 {
            return Sniff::Refused;
        }
    }
    // Protocol name: length 4, "MQTT"; then the level.
    let Some(header) = buf.get(pos..pos + 7) else {
        return Sniff::NeedMore;
    };
    if header[..6] != [0, 4, b'M', b'Q', b'T', b'T'] {
        return Sniff::Refused;
    }
    match header[6] {
        4 => Sniff::Codec(Codec::V4),
        5 => Sniff::Codec(Codec::V5),
        _ => Sniff::Refused,
    }
}

/// QoS and packet id of the PUBLISH frame at the front of `buf`, read from the raw bytes
/// (rumqttd keeps them private once decoded). `None` if the front is not a whole PUBLISH.
pub fn peek_publish(buf: &[u8]) -> Option<(u8, u16)> {
    let first = *buf.first()?;
    if first >> 4 != 3 {
        return None;
    }
    let qos = (first >> 1) & 0b11;
    let mut pos = 1;
    loop {
        let b = *buf.get(pos)?;
        pos += 1;
        if b & 0x80 == 0 {
            break;
        }
        if pos > 4 {
            return None;
        }
    }
    let topic_len = usize::from(u16::from_be_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]));
    let at = pos + 2 + topic_len;
    let pkid = if qos > 0 {
        u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?])
    } else {
        0
    };
    Some((qos, pkid))
}

impl Codec {
    /// Decodes one packet from `buf`; `InsufficientBytes` means read more.
    pub fn read(self, buf: &mut BytesMut, max_size: usize) -> Result<Packet, ProtocolError> {
        match self {
            Codec::V4 => V4.read_mut(buf, max_size),
            Codec::V5 => V5.read_mut(buf, max_size),
        }
    }

    /// Encodes a PUBLISH from the server (QoS 0 or 1). rumqttd keeps a publish's QoS and
    /// packet id private (its router sets them), so rumqttc's encoders write it.
    pub fn write_publish(
        self,
        topic: &str,
        payload: bytes::Bytes,
        qos1: Option<u16>,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        match self {
            Codec::V4 => {
                use rumqttc::mqttbytes::{v4, QoS};
                let publish = v4::Publish {
                    dup: false,
                    qos: if qos1.is_some() {
                        QoS::AtLeastOnce
                    } else {
                        QoS::AtMostOnce
                    },
                    retain: false,
                    topic: topic.to_owned(),
                    pkid: qos1.unwrap_or(0),
                    payload,
                };
                publish.write(buf).map(drop).map_err(|e| e.to_string())
            }
            Codec::V5 => {
                use rumqttc::v5::mqttbytes::{v5, QoS};
                let publish = v5::Publish {
                    dup: false,
                    qos: if qos1.is_some() {
                        QoS::AtLeastOnce
                    } else {
                        QoS::AtMostOnce
                    },
                    retain: false,
                    topic: bytes::Bytes::copy_from_slice(topic.as_bytes()),
                    pkid: qos1.unwrap_or(0),
                    payload,
                    properties: None,
                };
                publish.write(buf).map(drop).map_err(|e| e.to_string())
            }
        }
    }

    /// Encodes `packet` onto `buf`.
    pub fn write(self, packet: Packet, buf: &mut BytesMut) -> Result<usize, ProtocolError> {
        match self {
            Codec::V4 => V4.write(packet, buf),
            Codec::V5 => V5.write(packet, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_protocol_level() {
        let v4 = [0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 4, 2];
        let v5 = [0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 5, 2];
        assert_eq!(sniff(&v4), Sniff::Codec(Codec::V4));
        assert_eq!(sniff(&v5), Sniff::Codec(Codec::V5));
        assert_eq!(sniff(&v4[..5]), Sniff::NeedMore);
        assert_eq!(sniff(&[]), Sniff::NeedMore);
        let v31 = [0x10, 0x10, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3];
        assert_eq!(sniff(&v31), Sniff::Refused);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Refused);
    }

    #[test]
    fn peeks_qos_and_packet_id_of_a_publish() {
        // QoS 1, topic "a/b", pkid 0x1234, payload "x"
        let frame = [0x32, 8, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'x'];
        assert_eq!(peek_publish(&frame), Some((1, 0x1234)));
        let qos0 = [0x30, 6, 0, 3, b'a', b'/', b'b', b'x'];
        assert_eq!(peek_publish(&qos0), Some((0, 0)));
        assert_eq!(peek_publish(&[0x82, 1]), None);
        assert_eq!(peek_publish(&frame[..3]), None);
    }
}
