use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The rev37 specification's example packet, byte for byte.
fn spec_example() -> Vec<u8> {
    let mut b = hex("48455033 0071
         0000 0001 0007 02
         0000 0002 0007 11
         0000 0003 000a d4ca0001
         0000 0004 000a 527400d3
         0000 0007 0008 2eea
         0000 0008 0008 13c4
         0000 0009 000a 4e4982cb
         0000 000a 000a 0001d4c0
         0000 000b 0007 01
         0000 000c 000a 000000e4
         0000 000f 0014");
    b.extend_from_slice(b"INVITE sip:bob");
    b
}

#[test]
fn the_specification_example_decodes_field_by_field() {
    let b = spec_example();
    assert_eq!(b.len(), 113);
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert_eq!(p.version, 3);
    assert_eq!(p.ip_proto, Some(17));
    assert_eq!(p.src, Some("212.202.0.1:12010".parse().unwrap()));
    assert_eq!(p.dst, Some("82.116.0.211:5060".parse().unwrap()));
    assert_eq!(p.ts, Some(Ts(1_313_440_459_120)));
    assert_eq!(p.proto_type, Some(PROTO_SIP));
    assert_eq!(p.capture_id, Some(228));
    assert_eq!(p.payload, Payload::Plain(b"INVITE sip:bob"));
    assert!(p.is_sip());
}

#[test]
fn builder_round_trips_ipv6_auth_and_correlation() {
    let src: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    let dst: SocketAddr = "[2001:db8::2]:5080".parse().unwrap();
    let b = HepBuilder {
        auth_key: Some(b"s3cret"),
        correlation_id: Some(b"abc@host"),
        ..HepBuilder::sip(src, dst, Ts(1_700_000_000_123))
    }
    .build(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert_eq!(p.src, Some(src));
    assert_eq!(p.dst, Some(dst));
    assert_eq!(p.ts, Some(Ts(1_700_000_000_123)));
    assert!(p.auth_matches(b"s3cret"));
    assert!(!p.auth_matches(b"s3creT"));
    assert!(!p.auth_matches(b"s3cre"));
    assert_eq!(p.correlation_id, Some(&b"abc@host"[..]));
}

#[test]
fn compressed_payload_inflates_and_is_bounded() {
    let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let body = vec![b'x'; 5000];
    let b = HepBuilder {
        compressed: true,
        ..HepBuilder::sip(a, a, Ts(1))
    }
    .build(&body);
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert!(matches!(p.payload, Payload::Compressed(_)));
    assert_eq!(p.payload_bytes(65_535).unwrap().len(), 5000);
    assert!(matches!(
        p.payload_bytes(4000),
        Err(HepError::TooLarge { .. })
    ));
}

#[test]
fn hepv2_from_kamailio_has_little_endian_time() {
    // version 2, hdr_len 16 (Kamailio: excludes the time header), AF_INET, UDP.
    let mut b = vec![2, 16, 2, 17];
    b.extend_from_slice(&5060u16.to_be_bytes());
    b.extend_from_slice(&5070u16.to_be_bytes());
    b.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2]);
    b.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    b.extend_from_slice(&250_000u32.to_le_bytes());
    b.extend_from_slice(&7u16.to_le_bytes());
    let packed = b.len();
    b.extend_from_slice(b"SIP/2.0 200 OK\r\n\r\n");
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(p.ts, Some(Ts(1_700_000_000_250)));
    assert_eq!(p.capture_id, Some(7));
    assert_eq!(p.src, Some("127.0.0.1:5060".parse().unwrap()));
    assert_eq!(p.payload, Payload::Plain(b"SIP/2.0 200 OK\r\n\r\n"));
    assert!(p.is_sip());
    // The same with network-order time (another sender) still decodes.
    let mut be = b.clone();
    be[16..20].copy_from_slice(&1_700_000_000u32.to_be_bytes());
    be[20..24].copy_from_slice(&250_000u32.to_be_bytes());
    assert_eq!(
        parse_datagram(&be, &Limits::default()).unwrap().ts,
        Some(Ts(1_700_000_000_250))
    );
    // Kamailio's real layout: the struct padded to 12 bytes.
    let mut padded = b[..packed].to_vec();
    padded.extend_from_slice(&[0, 0]);
    padded.extend_from_slice(b"SIP/2.0 200 OK\r\n\r\n");
    let p = parse_datagram(&padded, &Limits::default()).unwrap();
    assert_eq!(p.payload, Payload::Plain(b"SIP/2.0 200 OK\r\n\r\n"));
}

#[test]
fn hepv1_ipv6_has_no_time() {
    let mut b = vec![1, 40, 10, 6];
    b.extend_from_slice(&5060u16.to_be_bytes());
    b.extend_from_slice(&5060u16.to_be_bytes());
    b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(b"BYE sip:a@b SIP/2.0\r\n\r\n");
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert_eq!(p.version, 1);
    assert_eq!(p.ts, None);
    assert_eq!(p.src, Some("[2001:db8::1]:5060".parse().unwrap()));
    assert_eq!(p.ip_proto, Some(6));
}

#[test]
fn bad_packets_are_errors_with_reasons() {
    let l = Limits::default();
    assert_eq!(
        parse_datagram(b"hello", &l).unwrap_err().reason(),
        "hep_not_hep"
    );
    let mut b = spec_example();
    b.truncate(100);
    assert_eq!(
        parse_datagram(&b, &l).unwrap_err().reason(),
        "hep_truncated"
    );
    let mut b = spec_example();
    b[6 + 4..6 + 6].copy_from_slice(&[0, 2]); // first chunk length 2
    assert_eq!(
        parse_datagram(&b, &l).unwrap_err().reason(),
        "hep_bad_chunk"
    );
    let mut b = spec_example();
    b[6 + 4..6 + 6].copy_from_slice(&[0, 200]); // beyond the packet
    assert_eq!(
        parse_datagram(&b, &l).unwrap_err().reason(),
        "hep_bad_chunk"
    );
    let small = Limits {
        max_packet: 100,
        max_payload: 100,
    };
    assert_eq!(
        parse_datagram(&spec_example(), &small)
            .unwrap_err()
            .reason(),
        "hep_too_large"
    );
    // A wrong-sized IPv4 chunk.
    let mut b = spec_example();
    b[6 + 14 + 4..6 + 14 + 6].copy_from_slice(&[0, 9]);
    assert!(parse_datagram(&b, &l).is_err());
    // No payload chunk at all.
    let mut b = hex("48455033 000d 0000 0002 0007 11");
    b[5] = b.len() as u8;
    assert_eq!(
        parse_datagram(&b, &l).unwrap_err().reason(),
        "hep_no_payload"
    );
    // v2 with an unknown family.
    assert_eq!(
        parse_datagram(&[2, 16, 99, 17, 0, 0, 0, 0, 1, 2, 3], &l)
            .unwrap_err()
            .reason(),
        "hep_bad_chunk"
    );
}

#[test]
fn vendor_chunks_and_unknown_generic_chunks_are_skipped() {
    let mut b = spec_example();
    // Append a Kamailio vendor chunk and an unknown generic chunk.
    b.extend_from_slice(&hex("0002 0001 0008 abcd 0000 0099 0007 ff"));
    let len = b.len() as u16;
    b[4..6].copy_from_slice(&len.to_be_bytes());
    let p = parse_datagram(&b, &Limits::default()).unwrap();
    assert_eq!(p.payload, Payload::Plain(b"INVITE sip:bob"));
}

#[test]
fn non_sip_protocol_types_are_told_apart() {
    let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let b = HepBuilder {
        proto_type: 5,
        ..HepBuilder::sip(a, a, Ts(1))
    }
    .build(b"{\"rtcp\":1}");
    assert!(!parse_datagram(&b, &Limits::default()).unwrap().is_sip());
    assert!(!looks_like_sip(b"\x80\x00rtp"));
    assert!(looks_like_sip(b"INVITE sip:1@h SIP/2.0"));
    assert!(looks_like_sip(b"SIP/2.0 180 Ringing"));
}

#[test]
fn tcp_stream_frames_by_length_across_arbitrary_splits() {
    let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let p1 = HepBuilder::sip(a, a, Ts(1000)).build(b"INVITE sip:1@h SIP/2.0\r\n\r\n");
    let p2 = HepBuilder::sip(a, a, Ts(2000)).build(b"SIP/2.0 100 Trying\r\n\r\n");
    let mut all = p1.clone();
    all.extend_from_slice(b"garbage!");
    all.extend_from_slice(&p2);
    for split in 1..all.len() {
        let mut f = StreamFramer::new(Limits::default());
        let mut got = Vec::new();
        let mut errs = 0;
        for part in [&all[..split], &all[split..]] {
            f.feed(part);
            while let Some(r) = f.next_packet() {
                match r {
                    Ok(p) => got.push(p.ts),
                    Err(_) => errs += 1,
                }
            }
        }
        assert_eq!(got, vec![Some(Ts(1000)), Some(Ts(2000))], "split {split}");
        assert!(errs >= 1, "split {split}: garbage must be reported");
        assert_eq!(f.buffered(), 0);
    }
}

#[test]
fn tcp_stream_drops_a_well_framed_packet_with_bad_chunks_whole() {
    let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let mut bad = HepBuilder::sip(a, a, Ts(1)).build(b"INVITE sip:1@h SIP/2.0\r\n\r\n");
    bad[6 + 4..6 + 6].copy_from_slice(&[0, 1]);
    let good = HepBuilder::sip(a, a, Ts(2)).build(b"INVITE sip:1@h SIP/2.0\r\n\r\n");
    let mut f = StreamFramer::new(Limits::default());
    f.feed(&bad);
    f.feed(&good);
    assert!(matches!(
        f.next_packet(),
        Some(Err(HepError::BadChunk { .. }))
    ));
    assert_eq!(f.next_packet().unwrap().unwrap().ts, Some(Ts(2)));
    assert!(f.next_packet().is_none());
}
