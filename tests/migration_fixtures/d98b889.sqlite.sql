-- store schema of d98b889 (intake/store.py), SQLite, made by make_dumps.py
CREATE TABLE cases (
	id INTEGER NOT NULL, 
	ref VARCHAR, 
	status VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	municipality VARCHAR, 
	sender VARCHAR, 
	client_name VARCHAR, 
	cpr_masked VARCHAR, 
	cpr_hmac VARCHAR, 
	examinations VARCHAR NOT NULL, 
	missing VARCHAR NOT NULL, 
	redirect_reason VARCHAR, 
	has_problem BOOLEAN NOT NULL, 
	attachments INTEGER NOT NULL, 
	waiting_since DATETIME, 
	reminded_at DATETIME, 
	accepted_at DATETIME, 
	due_date DATE, 
	closed_at DATETIME, 
	close_reason VARCHAR, 
	purged_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_cases_cpr_hmac ON cases (cpr_hmac);
CREATE UNIQUE INDEX ix_cases_ref ON cases (ref);
CREATE TABLE audit (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR NOT NULL, 
	action VARCHAR NOT NULL, 
	case_ref VARCHAR, 
	detail VARCHAR, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_case_ref ON audit (case_ref);
CREATE TABLE checkpoints (
	folder VARCHAR NOT NULL, 
	uidvalidity INTEGER NOT NULL, 
	last_uid INTEGER NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (folder)
);
CREATE TABLE messages (
	id INTEGER NOT NULL, 
	message_id VARCHAR, 
	content_hash VARCHAR NOT NULL, 
	folder VARCHAR NOT NULL, 
	uidvalidity INTEGER NOT NULL, 
	uid INTEGER NOT NULL, 
	size INTEGER NOT NULL, 
	received_at DATETIME NOT NULL, 
	decision VARCHAR NOT NULL, 
	reason VARCHAR, 
	missing VARCHAR NOT NULL, 
	examinations VARCHAR NOT NULL, 
	attachments INTEGER NOT NULL, 
	sender VARCHAR, 
	municipality VARCHAR, 
	target_folder VARCHAR NOT NULL, 
	state VARCHAR NOT NULL, 
	filed_at DATETIME, 
	filed_folder VARCHAR, 
	followup BOOLEAN NOT NULL, 
	encryption VARCHAR, 
	signature_verdict VARCHAR, 
	signer VARCHAR, 
	archive_path VARCHAR, 
	purged_at DATETIME, 
	case_id INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id)
);
CREATE INDEX ix_messages_content_hash ON messages (content_hash);
CREATE INDEX ix_messages_case_id ON messages (case_id);
CREATE INDEX ix_messages_message_id ON messages (message_id);
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	dedupe_key VARCHAR NOT NULL, 
	message_record_id INTEGER, 
	case_id INTEGER, 
	kind VARCHAR NOT NULL, 
	to_addr VARCHAR NOT NULL, 
	from_addr VARCHAR NOT NULL, 
	reply_message_id VARCHAR NOT NULL, 
	raw BLOB NOT NULL, 
	state VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	last_error VARCHAR, 
	created_at DATETIME NOT NULL, 
	sent_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (dedupe_key), 
	FOREIGN KEY(message_record_id) REFERENCES messages (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id)
);
CREATE INDEX ix_outbox_to_addr ON outbox (to_addr);
CREATE INDEX ix_outbox_reply_message_id ON outbox (reply_message_id);
CREATE INDEX ix_outbox_case_id ON outbox (case_id);
