use super::*;

#[test]
fn limits_count_bytes_not_characters() {
    assert!(check_description(&"a".repeat(MAX_DESCRIPTION_BYTES)).is_ok());
    assert_eq!(
        check_description(&"a".repeat(MAX_DESCRIPTION_BYTES + 1)),
        Err(FieldTooLong {
            field: "description",
            len: 256,
            max: 255
        })
    );
    // 128 two-byte characters = 256 bytes.
    assert!(check_description(&"é".repeat(128)).is_err());
    assert!(check_metadata(&"a".repeat(MAX_METADATA_BYTES)).is_ok());
    let err = check_metadata(&"a".repeat(MAX_METADATA_BYTES + 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "metadata is 4097 bytes long; at most 4096 bytes are allowed"
    );
}
