// TCLIService: the HiveServer2 client protocol as spoken by Databricks SQL warehouses.
//
// This file is the source of src/thrift/tcli.rs (run scripts/regen-thrift.sh after editing).
// It follows the public Apache Hive service-rpc IDL for the base protocol, plus the Databricks
// extension fields (ids 1281 and up) that the public Databricks drivers send and read.
// Field ids, field types and enum values are wire facts and must not change; names only
// matter to the generated code. Fields with ids >= 3329 are server-internal and left out.
//
// Conventions used below:
// - every struct field says `required` or `optional`; `required` is kept only where the
//   servers always send (or always expect) the field, since a missing required field is a
//   decode error;
// - each RPC takes one request struct `T<Rpc>Req` and returns `T<Rpc>Resp`, whose first
//   field is always `1: required TStatus status`.

namespace rs tcli

// ---------------------------------------------------------------------------------------
// Versions and type ids
// ---------------------------------------------------------------------------------------

// Protocol revision a client asks for and a server settles on in OpenSession.
enum TProtocolVersion {
  // Sent in TOpenSessionReq.client_protocol by Databricks clients, which put the real
  // version in client_protocol_i64. Vanilla HiveServer2 rejects it.
  __HIVE_JDBC_WORKAROUND = -7,
  // Test-only value some servers accept.
  __TEST_PROTOCOL_VERSION = 65281,

  HIVE_CLI_SERVICE_PROTOCOL_V1 = 0,
  HIVE_CLI_SERVICE_PROTOCOL_V2 = 1,   // async execution
  HIVE_CLI_SERVICE_PROTOCOL_V3 = 2,   // varchar, type qualifiers
  HIVE_CLI_SERVICE_PROTOCOL_V4 = 3,   // decimal precision/scale, char
  HIVE_CLI_SERVICE_PROTOCOL_V5 = 4,   // error details in GetOperationStatus
  HIVE_CLI_SERVICE_PROTOCOL_V6 = 5,   // column-based row sets
  HIVE_CLI_SERVICE_PROTOCOL_V7 = 6,   // delegation tokens
  HIVE_CLI_SERVICE_PROTOCOL_V8 = 7,   // interval types
  HIVE_CLI_SERVICE_PROTOCOL_V9 = 8,   // SerDe-serialized result sets
  HIVE_CLI_SERVICE_PROTOCOL_V10 = 9,  // progress updates in GetOperationStatus
  HIVE_CLI_SERVICE_PROTOCOL_V11 = 10, // timestamp with local time zone

  // Databricks revisions (0xA501 and up).
  SPARK_CLI_SERVICE_PROTOCOL_V1 = 42241,
  SPARK_CLI_SERVICE_PROTOCOL_V2 = 42242,
  SPARK_CLI_SERVICE_PROTOCOL_V3 = 42243, // CloudFetch result links
  SPARK_CLI_SERVICE_PROTOCOL_V4 = 42244, // multiple catalogs, initial namespace
  SPARK_CLI_SERVICE_PROTOCOL_V5 = 42245, // Arrow results
  SPARK_CLI_SERVICE_PROTOCOL_V6 = 42246, // LZ4 compression, async metadata calls
  SPARK_CLI_SERVICE_PROTOCOL_V7 = 42247, // result persistence
  SPARK_CLI_SERVICE_PROTOCOL_V8 = 42248, // statement parameters
  SPARK_CLI_SERVICE_PROTOCOL_V9 = 42249,
}

// SQL type of a result column (TPrimitiveTypeEntry.type).
enum TTypeId {
  BOOLEAN_TYPE = 0,
  TINYINT_TYPE = 1,
  SMALLINT_TYPE = 2,
  INT_TYPE = 3,
  BIGINT_TYPE = 4,
  FLOAT_TYPE = 5,
  DOUBLE_TYPE = 6,
  STRING_TYPE = 7,
  TIMESTAMP_TYPE = 8,
  BINARY_TYPE = 9,
  ARRAY_TYPE = 10,
  MAP_TYPE = 11,
  STRUCT_TYPE = 12,
  UNION_TYPE = 13,
  USER_DEFINED_TYPE = 14,
  DECIMAL_TYPE = 15,
  NULL_TYPE = 16,
  DATE_TYPE = 17,
  VARCHAR_TYPE = 18,
  CHAR_TYPE = 19,
  INTERVAL_YEAR_MONTH_TYPE = 20,
  INTERVAL_DAY_TIME_TYPE = 21,
  TIMESTAMPLOCALTZ_TYPE = 22, // Hive only
}

// Shape of the rows in a result (TGetResultSetMetadataResp.resultFormat).
enum TSparkRowSetType {
  ARROW_BASED_SET = 0,   // TRowSet.arrowBatches
  COLUMN_BASED_SET = 1,  // TRowSet.columns
  ROW_BASED_SET = 2,     // TRowSet.rows
  URL_BASED_SET = 3,     // TRowSet.resultLinks (CloudFetch)
}

enum TDBSqlCompressionCodec {
  NONE = 0,
  LZ4_FRAME = 1,
  LZ4_BLOCK = 2,
}

enum TDBSqlArrowLayout {
  ARROW_BATCH = 0,
  ARROW_STREAMING = 1,
}

// Whether a result came from the server's result cache.
enum TCacheLookupResult {
  CACHE_INELIGIBLE = 0,
  LOCAL_CACHE_HIT = 1,
  REMOTE_CACHE_HIT = 2,
  CACHE_MISS = 3,
}

// ---------------------------------------------------------------------------------------
// Column types
// ---------------------------------------------------------------------------------------

// An index into TTypeDesc.types.
typedef i32 TTypeEntryPtr

// Keys of TTypeQualifiers.qualifiers.
const string CHARACTER_MAXIMUM_LENGTH = "characterMaximumLength"
const string PRECISION = "precision"
const string SCALE = "scale"

union TTypeQualifierValue {
  1: optional i32 i32Value
  2: optional string stringValue
}

// Parameters of a primitive type: varchar length, decimal precision and scale.
struct TTypeQualifiers {
  1: required map<string, TTypeQualifierValue> qualifiers
}

struct TPrimitiveTypeEntry {
  1: required TTypeId type
  2: optional TTypeQualifiers typeQualifiers
}

struct TArrayTypeEntry {
  1: required TTypeEntryPtr objectTypePtr
}

struct TMapTypeEntry {
  1: required TTypeEntryPtr keyTypePtr
  2: required TTypeEntryPtr valueTypePtr
}

struct TStructTypeEntry {
  1: required map<string, TTypeEntryPtr> nameToTypePtr
}

struct TUnionTypeEntry {
  1: required map<string, TTypeEntryPtr> nameToTypePtr
}

struct TUserDefinedTypeEntry {
  1: required string typeClassName
}

// One node of a (possibly nested) column type.
union TTypeEntry {
  1: TPrimitiveTypeEntry primitiveEntry
  2: TArrayTypeEntry arrayEntry
  3: TMapTypeEntry mapEntry
  4: TStructTypeEntry structEntry
  5: TUnionTypeEntry unionEntry
  6: TUserDefinedTypeEntry userDefinedTypeEntry
}

// A column type as a flat list of nodes: element 0 is the column's own type, nested
// types refer to other elements by index (TTypeEntryPtr), since Thrift has no recursion.
struct TTypeDesc {
  1: required list<TTypeEntry> types
}

struct TColumnDesc {
  1: required string columnName
  2: required TTypeDesc typeDesc
  // Position of the column in the result (1-based on Databricks, 0-based on vanilla Hive).
  3: required i32 position
  4: optional string comment
}

// The columns of a result.
struct TTableSchema {
  1: required list<TColumnDesc> columns
}

// ---------------------------------------------------------------------------------------
// Row-based values (TRowSet.rows); an unset value is SQL NULL
// ---------------------------------------------------------------------------------------

struct TBoolValue {
  1: optional bool value
}

struct TByteValue {
  1: optional i8 value
}

struct TI16Value {
  1: optional i16 value
}

struct TI32Value {
  1: optional i32 value
}

struct TI64Value {
  1: optional i64 value
}

struct TDoubleValue {
  1: optional double value
}

struct TStringValue {
  1: optional string value
}

// One cell. Several SQL types share a physical variant; the schema tells them apart.
union TColumnValue {
  1: TBoolValue boolVal
  2: TByteValue byteVal
  3: TI16Value i16Val
  4: TI32Value i32Val
  5: TI64Value i64Val
  6: TDoubleValue doubleVal
  7: TStringValue stringVal
}

struct TRow {
  1: required list<TColumnValue> colVals
}

// ---------------------------------------------------------------------------------------
// Column-based values (TRowSet.columns): a value list plus a null bitmap in which bit
// (i % 8) of byte (i / 8) is set when row i is NULL; an empty bitmap means no NULLs
// ---------------------------------------------------------------------------------------

struct TBoolColumn {
  1: required list<bool> values
  2: required binary nulls
}

struct TByteColumn {
  1: required list<i8> values
  2: required binary nulls
}

struct TI16Column {
  1: required list<i16> values
  2: required binary nulls
}

struct TI32Column {
  1: required list<i32> values
  2: required binary nulls
}

struct TI64Column {
  1: required list<i64> values
  2: required binary nulls
}

struct TDoubleColumn {
  1: required list<double> values
  2: required binary nulls
}

struct TStringColumn {
  1: required list<string> values
  2: required binary nulls
}

struct TBinaryColumn {
  1: required list<binary> values
  2: required binary nulls
}

// One column of a column-based row set. Decimal, date, timestamp, interval and complex
// types travel as strings.
union TColumn {
  1: TBoolColumn boolVal
  2: TByteColumn byteVal
  3: TI16Column i16Val
  4: TI32Column i32Val
  5: TI64Column i64Val
  6: TDoubleColumn doubleVal
  7: TStringColumn stringVal
  8: TBinaryColumn binaryVal
}

// ---------------------------------------------------------------------------------------
// Databricks result formats
// ---------------------------------------------------------------------------------------

struct TDBSqlJsonArrayFormat {
  1: optional TDBSqlCompressionCodec compressionCodec
}

struct TDBSqlCsvFormat {
  1: optional TDBSqlCompressionCodec compressionCodec
}

struct TDBSqlArrowFormat {
  1: optional TDBSqlArrowLayout arrowLayout
  2: optional TDBSqlCompressionCodec compressionCodec
}

union TDBSqlResultFormat {
  1: TDBSqlArrowFormat arrowFormat
  2: TDBSqlCsvFormat csvFormat
  3: TDBSqlJsonArrayFormat jsonArrayFormat
}

// One inline Arrow record batch: an IPC record-batch message without the schema message
// (that one comes in TGetResultSetMetadataResp.arrowSchema); LZ4-framed when compressed.
struct TSparkArrowBatch {
  1: required binary batch
  2: required i64 rowCount
}

// One CloudFetch file: a presigned URL to a whole Arrow IPC stream.
struct TSparkArrowResultLink {
  1: required string fileLink
  // Milliseconds since the Unix epoch after which fileLink no longer works.
  2: required i64 expiryTime
  3: required i64 startRowOffset
  4: required i64 rowCount
  5: required i64 bytesNum
  // Headers to send with the download (instead of the workspace credentials).
  6: optional map<string, string> httpHeaders
}

// A chunk of result rows, in one of the formats of TSparkRowSetType.
struct TRowSet {
  1: required i64 startRowOffset
  2: required list<TRow> rows
  3: optional list<TColumn> columns
  4: optional binary binaryColumns
  5: optional i32 columnCount
  1281: optional list<TSparkArrowBatch> arrowBatches
  1282: optional list<TSparkArrowResultLink> resultLinks
}

// ---------------------------------------------------------------------------------------
// Status, states and handles
// ---------------------------------------------------------------------------------------

enum TStatusCode {
  SUCCESS_STATUS = 0,
  SUCCESS_WITH_INFO_STATUS = 1,
  STILL_EXECUTING_STATUS = 2,
  ERROR_STATUS = 3,
  INVALID_HANDLE_STATUS = 4,
}

// Outcome of one RPC; every response carries one.
struct TStatus {
  1: required TStatusCode statusCode
  2: optional list<string> infoMessages
  // Set on ERROR_STATUS:
  3: optional string sqlState
  4: optional i32 errorCode
  5: optional string errorMessage
  6: optional string displayMessage
  1281: optional string errorDetailsJson
}

// Life cycle of an operation on the server. (UKNOWN is the wire spelling.)
enum TOperationState {
  INITIALIZED_STATE = 0,
  RUNNING_STATE = 1,
  FINISHED_STATE = 2,
  CANCELED_STATE = 3,
  CLOSED_STATE = 4,
  ERROR_STATE = 5,
  UKNOWN_STATE = 6,
  PENDING_STATE = 7,
  TIMEDOUT_STATE = 8,
}

// A literal name.
typedef string TIdentifier

// A LIKE-style pattern: '_' one character, '%' any run of characters, '\' escapes.
typedef string TPattern

// A name that may also be a pattern.
typedef string TPatternOrIdentifier

// A catalog and schema pair (Databricks).
struct TNamespace {
  1: optional TIdentifier catalogName
  2: optional TIdentifier schemaName
}

// Server-issued id of a session or operation: a 16-byte public guid (its UUID text is what
// users see) and a 16-byte secret that proves the holder got it from the server.
struct THandleIdentifier {
  1: required binary guid
  2: required binary secret
}

struct TSessionHandle {
  1: required THandleIdentifier sessionId
}

// What kind of request created an operation.
enum TOperationType {
  EXECUTE_STATEMENT = 0,
  GET_TYPE_INFO = 1,
  GET_CATALOGS = 2,
  GET_SCHEMAS = 3,
  GET_TABLES = 4,
  GET_TABLE_TYPES = 5,
  GET_COLUMNS = 6,
  GET_FUNCTIONS = 7,
  UNKNOWN = 8,
}

struct TOperationHandle {
  1: required THandleIdentifier operationId
  2: required TOperationType operationType
  // Whether GetResultSetMetadata / FetchResults may be called (the result may be empty).
  3: required bool hasResultSet
  // For statements without a result set: rows changed by DML (negative when unknown).
  4: optional double modifiedRowCount
}

// ---------------------------------------------------------------------------------------
// OpenSession / CloseSession
// ---------------------------------------------------------------------------------------

struct TOpenSessionReq {
  // Databricks clients send __HIVE_JDBC_WORKAROUND here and the version in field 1282.
  1: optional TProtocolVersion client_protocol = TProtocolVersion.__HIVE_JDBC_WORKAROUND
  2: optional string username
  3: optional string password
  // Session configuration applied when the session is created.
  4: optional map<string, string> configuration
  1281: optional list<TGetInfoType> getInfos
  1282: optional i64 client_protocol_i64
  1283: optional map<string, string> connectionProperties
  1284: optional TNamespace initialNamespace
  1285: optional bool canUseMultipleCatalogs
}

struct TOpenSessionResp {
  1: required TStatus status
  // The version the server settled on; features are gated on it.
  2: required TProtocolVersion serverProtocolVersion
  3: optional TSessionHandle sessionHandle
  4: optional map<string, string> configuration
  1281: optional list<TGetInfoValue> getInfos
  1284: optional TNamespace initialNamespace
  1285: optional bool canUseMultipleCatalogs
}

struct TCloseSessionReq {
  1: required TSessionHandle sessionHandle
}

struct TCloseSessionResp {
  1: required TStatus status
}

// ---------------------------------------------------------------------------------------
// GetInfo (keys and value kinds of ODBC's SQLGetInfo)
// ---------------------------------------------------------------------------------------

enum TGetInfoType {
  CLI_MAX_DRIVER_CONNECTIONS = 0,
  CLI_MAX_CONCURRENT_ACTIVITIES = 1,
  CLI_DATA_SOURCE_NAME = 2,
  CLI_FETCH_DIRECTION = 8,
  CLI_SERVER_NAME = 13,
  CLI_SEARCH_PATTERN_ESCAPE = 14,
  CLI_DBMS_NAME = 17,
  CLI_DBMS_VER = 18,
  CLI_ACCESSIBLE_TABLES = 19,
  CLI_ACCESSIBLE_PROCEDURES = 20,
  CLI_CURSOR_COMMIT_BEHAVIOR = 23,
  CLI_DATA_SOURCE_READ_ONLY = 25,
  CLI_DEFAULT_TXN_ISOLATION = 26,
  CLI_IDENTIFIER_CASE = 28,
  CLI_IDENTIFIER_QUOTE_CHAR = 29,
  CLI_MAX_COLUMN_NAME_LEN = 30,
  CLI_MAX_CURSOR_NAME_LEN = 31,
  CLI_MAX_SCHEMA_NAME_LEN = 32,
  CLI_MAX_CATALOG_NAME_LEN = 34,
  CLI_MAX_TABLE_NAME_LEN = 35,
  CLI_SCROLL_CONCURRENCY = 43,
  CLI_TXN_CAPABLE = 46,
  CLI_USER_NAME = 47,
  CLI_TXN_ISOLATION_OPTION = 72,
  CLI_INTEGRITY = 73,
  CLI_GETDATA_EXTENSIONS = 81,
  CLI_NULL_COLLATION = 85,
  CLI_ALTER_TABLE = 86,
  CLI_ORDER_BY_COLUMNS_IN_SELECT = 90,
  CLI_SPECIAL_CHARACTERS = 94,
  CLI_MAX_COLUMNS_IN_GROUP_BY = 97,
  CLI_MAX_COLUMNS_IN_INDEX = 98,
  CLI_MAX_COLUMNS_IN_ORDER_BY = 99,
  CLI_MAX_COLUMNS_IN_SELECT = 100,
  CLI_MAX_COLUMNS_IN_TABLE = 101,
  CLI_MAX_INDEX_SIZE = 102,
  CLI_MAX_ROW_SIZE = 104,
  CLI_MAX_STATEMENT_LEN = 105,
  CLI_MAX_TABLES_IN_SELECT = 106,
  CLI_MAX_USER_NAME_LEN = 107,
  CLI_OJ_CAPABILITIES = 115,
  CLI_XOPEN_CLI_YEAR = 10000,
  CLI_CURSOR_SENSITIVITY = 10001,
  CLI_DESCRIBE_PARAMETER = 10002,
  CLI_CATALOG_NAME = 10003,
  CLI_COLLATION_SEQ = 10004,
  CLI_MAX_IDENTIFIER_LEN = 10005,
}

union TGetInfoValue {
  1: string stringValue
  2: i16 smallIntValue
  3: i32 integerBitmask
  4: i32 integerFlag
  5: i32 binaryValue
  6: i64 lenValue
}

struct TGetInfoReq {
  1: required TSessionHandle sessionHandle
  2: required TGetInfoType infoType
}

struct TGetInfoResp {
  1: required TStatus status
  2: required TGetInfoValue infoValue
}

// ---------------------------------------------------------------------------------------
// Direct results: the server may answer a request with the operation's status, metadata,
// first rows and close confirmation in the same reply (Databricks)
// ---------------------------------------------------------------------------------------

// Asks for direct results, bounded by rows and bytes.
struct TSparkGetDirectResults {
  1: required i64 maxRows
  2: optional i64 maxBytes
}

struct TSparkDirectResults {
  1: optional TGetOperationStatusResp operationStatus
  2: optional TGetResultSetMetadataResp resultSetMetadata
  3: optional TFetchResultsResp resultSet
  // Present when the server already closed the operation.
  4: optional TCloseOperationResp closeOperation
}

// Which Spark types the client takes as native Arrow types instead of strings.
struct TSparkArrowTypes {
  1: optional bool timestampAsArrow
  2: optional bool decimalAsArrow
  3: optional bool complexTypesAsArrow
  4: optional bool intervalTypesAsArrow
  5: optional bool nullTypeAsArrow
}

// ---------------------------------------------------------------------------------------
// ExecuteStatement
// ---------------------------------------------------------------------------------------

// A bound parameter value (Databricks).
union TSparkParameterValue {
  1: string stringValue
  2: double doubleValue
  3: bool booleanValue
}

// A typed argument of a parameter of a complex type (Databricks).
struct TSparkParameterValueArg {
  1: optional string type
  2: optional string value
  3: optional list<TSparkParameterValueArg> arguments
}

// A statement parameter, bound by position (ordinal) or by name (Databricks).
struct TSparkParameter {
  1: optional i32 ordinal
  2: optional string name
  3: optional string type
  4: optional TSparkParameterValue value
  5: optional list<TSparkParameterValueArg> arguments
}

// Per-statement settings (Databricks).
struct TStatementConf {
  1: optional bool sessionless
  2: optional TNamespace initialNamespace
  3: optional TProtocolVersion client_protocol
  4: optional i64 client_protocol_i64
}

struct TExecuteStatementReq {
  1: required TSessionHandle sessionHandle
  2: required string statement
  // Settings for this statement only, on top of the session's.
  3: optional map<string, string> confOverlay
  4: optional bool runAsync = false
  // Seconds after which the server times the statement out (0 = never).
  5: optional i64 queryTimeout = 0
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool canReadArrowResult
  1283: optional bool canDownloadResult
  1284: optional bool canDecompressLZ4Result
  1285: optional i64 maxBytesPerFile
  1286: optional TSparkArrowTypes useArrowNativeTypes
  1287: optional i64 resultRowLimit
  1288: optional list<TSparkParameter> parameters
  1289: optional i64 maxBytesPerBatch
  1296: optional TStatementConf statementConf
}

struct TExecuteStatementResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

// ---------------------------------------------------------------------------------------
// Metadata calls: each starts an operation whose result set is read like a query's
// ---------------------------------------------------------------------------------------

struct TGetTypeInfoReq {
  1: required TSessionHandle sessionHandle
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetTypeInfoResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetCatalogsReq {
  1: required TSessionHandle sessionHandle
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetCatalogsResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetSchemasReq {
  1: required TSessionHandle sessionHandle
  2: optional TIdentifier catalogName
  3: optional TPatternOrIdentifier schemaName
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetSchemasResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetTablesReq {
  1: required TSessionHandle sessionHandle
  2: optional TPatternOrIdentifier catalogName
  3: optional TPatternOrIdentifier schemaName
  4: optional TPatternOrIdentifier tableName
  // Table types to keep, e.g. "TABLE", "VIEW".
  5: optional list<string> tableTypes
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetTablesResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetTableTypesReq {
  1: required TSessionHandle sessionHandle
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetTableTypesResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetColumnsReq {
  1: required TSessionHandle sessionHandle
  2: optional TIdentifier catalogName
  3: optional TPatternOrIdentifier schemaName
  4: optional TPatternOrIdentifier tableName
  5: optional TPatternOrIdentifier columnName
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetColumnsResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetFunctionsReq {
  1: required TSessionHandle sessionHandle
  2: optional TIdentifier catalogName
  3: optional TPatternOrIdentifier schemaName
  4: required TPatternOrIdentifier functionName
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetFunctionsResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

struct TGetPrimaryKeysReq {
  1: required TSessionHandle sessionHandle
  2: optional TIdentifier catalogName
  3: optional TIdentifier schemaName
  4: optional TIdentifier tableName
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetPrimaryKeysResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

// Foreign keys between a parent (primary key) table and a foreign (referencing) table.
struct TGetCrossReferenceReq {
  1: required TSessionHandle sessionHandle
  2: optional TIdentifier parentCatalogName
  3: optional TIdentifier parentSchemaName
  4: optional TIdentifier parentTableName
  5: optional TIdentifier foreignCatalogName
  6: optional TIdentifier foreignSchemaName
  7: optional TIdentifier foreignTableName
  1281: optional TSparkGetDirectResults getDirectResults
  1282: optional bool runAsync = false
}

struct TGetCrossReferenceResp {
  1: required TStatus status
  2: optional TOperationHandle operationHandle
  1281: optional TSparkDirectResults directResults
}

// ---------------------------------------------------------------------------------------
// GetOperationStatus / CancelOperation / CloseOperation
// ---------------------------------------------------------------------------------------

enum TJobExecutionStatus {
  IN_PROGRESS = 0,
  COMPLETE = 1,
  NOT_AVAILABLE = 2,
}

// A progress table (Hive's in-place progress bar).
struct TProgressUpdateResp {
  1: required list<string> headerNames
  2: required list<list<string>> rows
  3: required double progressedPercentage
  4: required TJobExecutionStatus status
  5: required string footerSummary
  6: required i64 startTime
}

struct TGetOperationStatusReq {
  1: required TOperationHandle operationHandle
  2: optional bool getProgressUpdate
}

struct TGetOperationStatusResp {
  1: required TStatus status
  2: optional TOperationState operationState
  // Set when operationState is ERROR_STATE:
  3: optional string sqlState
  4: optional i32 errorCode
  5: optional string errorMessage
  6: optional string taskStatus
  // Start and end times, milliseconds since the Unix epoch.
  7: optional i64 operationStarted
  8: optional i64 operationCompleted
  9: optional bool hasResultSet
  10: optional TProgressUpdateResp progressUpdateResponse
  11: optional i64 numModifiedRows
  1281: optional string displayMessage
  1282: optional string diagnosticInfo
  1283: optional string errorDetailsJson
}

struct TCancelOperationReq {
  1: required TOperationHandle operationHandle
}

struct TCancelOperationResp {
  1: required TStatus status
}

struct TCloseOperationReq {
  1: required TOperationHandle operationHandle
}

struct TCloseOperationResp {
  1: required TStatus status
}

// ---------------------------------------------------------------------------------------
// GetResultSetMetadata / FetchResults
// ---------------------------------------------------------------------------------------

struct TGetResultSetMetadataReq {
  1: required TOperationHandle operationHandle
}

struct TGetResultSetMetadataResp {
  1: required TStatus status
  2: optional TTableSchema schema
  1281: optional TSparkRowSetType resultFormat
  1282: optional bool lz4Compressed
  // The Arrow IPC schema message that goes in front of every inline batch.
  1283: optional binary arrowSchema
  1284: optional TCacheLookupResult cacheLookupResult
  1285: optional i64 uncompressedBytes
  1286: optional i64 compressedBytes
  1287: optional bool isStagingOperation
}

// Where FetchResults reads from. Servers support FETCH_NEXT and FETCH_FIRST.
enum TFetchOrientation {
  FETCH_NEXT = 0,
  FETCH_PRIOR = 1,
  FETCH_RELATIVE = 2,
  FETCH_ABSOLUTE = 3,
  FETCH_FIRST = 4,
  FETCH_LAST = 5,
}

struct TFetchResultsReq {
  1: required TOperationHandle operationHandle
  2: required TFetchOrientation orientation = TFetchOrientation.FETCH_NEXT
  3: required i64 maxRows
  // 0 reads the result, 1 the operation log.
  4: optional i16 fetchType = 0
  1281: optional i64 maxBytes
  // Re-reads from this row (used to refresh expired CloudFetch links).
  1282: optional i64 startRowOffset
  1283: optional bool includeResultSetMetadata
}

struct TFetchResultsResp {
  1: required TStatus status
  // Whether another FetchResults may return more rows.
  2: optional bool hasMoreRows
  3: optional TRowSet results
  1281: optional TGetResultSetMetadataResp resultSetMetadata
}

// ---------------------------------------------------------------------------------------
// The service: one call per HTTP POST, strict binary protocol
// ---------------------------------------------------------------------------------------

service TCLIService {
  TOpenSessionResp OpenSession(1: TOpenSessionReq req);
  TCloseSessionResp CloseSession(1: TCloseSessionReq req);
  TGetInfoResp GetInfo(1: TGetInfoReq req);
  TExecuteStatementResp ExecuteStatement(1: TExecuteStatementReq req);
  TGetTypeInfoResp GetTypeInfo(1: TGetTypeInfoReq req);
  TGetCatalogsResp GetCatalogs(1: TGetCatalogsReq req);
  TGetSchemasResp GetSchemas(1: TGetSchemasReq req);
  TGetTablesResp GetTables(1: TGetTablesReq req);
  TGetTableTypesResp GetTableTypes(1: TGetTableTypesReq req);
  TGetColumnsResp GetColumns(1: TGetColumnsReq req);
  TGetFunctionsResp GetFunctions(1: TGetFunctionsReq req);
  TGetPrimaryKeysResp GetPrimaryKeys(1: TGetPrimaryKeysReq req);
  TGetCrossReferenceResp GetCrossReference(1: TGetCrossReferenceReq req);
  TGetOperationStatusResp GetOperationStatus(1: TGetOperationStatusReq req);
  TCancelOperationResp CancelOperation(1: TCancelOperationReq req);
  TCloseOperationResp CloseOperation(1: TCloseOperationReq req);
  TGetResultSetMetadataResp GetResultSetMetadata(1: TGetResultSetMetadataReq req);
  TFetchResultsResp FetchResults(1: TFetchResultsReq req);
}
