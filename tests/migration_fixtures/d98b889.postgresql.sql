-- store schema of d98b889 (intake/store.py), PostgreSQL, made by make_dumps.py
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.audit (
    id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    actor character varying NOT NULL,
    action character varying NOT NULL,
    case_ref character varying,
    detail character varying
);

CREATE SEQUENCE public.audit_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.audit_id_seq OWNED BY public.audit.id;

CREATE TABLE public.cases (
    id integer NOT NULL,
    ref character varying,
    status character varying NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    municipality character varying,
    sender character varying,
    client_name character varying,
    cpr_masked character varying,
    cpr_hmac character varying,
    examinations character varying NOT NULL,
    missing character varying NOT NULL,
    redirect_reason character varying,
    has_problem boolean NOT NULL,
    attachments integer NOT NULL,
    waiting_since timestamp with time zone,
    reminded_at timestamp with time zone,
    accepted_at timestamp with time zone,
    due_date date,
    closed_at timestamp with time zone,
    close_reason character varying,
    purged_at timestamp with time zone
);

CREATE SEQUENCE public.cases_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.cases_id_seq OWNED BY public.cases.id;

CREATE TABLE public.checkpoints (
    folder character varying NOT NULL,
    uidvalidity integer NOT NULL,
    last_uid integer NOT NULL,
    updated_at timestamp with time zone NOT NULL
);

CREATE TABLE public.messages (
    id integer NOT NULL,
    message_id character varying,
    content_hash character varying NOT NULL,
    folder character varying NOT NULL,
    uidvalidity integer NOT NULL,
    uid integer NOT NULL,
    size integer NOT NULL,
    received_at timestamp with time zone NOT NULL,
    decision character varying NOT NULL,
    reason character varying,
    missing character varying NOT NULL,
    examinations character varying NOT NULL,
    attachments integer NOT NULL,
    sender character varying,
    municipality character varying,
    target_folder character varying NOT NULL,
    state character varying NOT NULL,
    filed_at timestamp with time zone,
    filed_folder character varying,
    followup boolean NOT NULL,
    encryption character varying,
    signature_verdict character varying,
    signer character varying,
    archive_path character varying,
    purged_at timestamp with time zone,
    case_id integer
);

CREATE SEQUENCE public.messages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.messages_id_seq OWNED BY public.messages.id;

CREATE TABLE public.outbox (
    id integer NOT NULL,
    dedupe_key character varying NOT NULL,
    message_record_id integer,
    case_id integer,
    kind character varying NOT NULL,
    to_addr character varying NOT NULL,
    from_addr character varying NOT NULL,
    reply_message_id character varying NOT NULL,
    raw bytea NOT NULL,
    state character varying NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    last_error character varying,
    created_at timestamp with time zone NOT NULL,
    sent_at timestamp with time zone
);

CREATE SEQUENCE public.outbox_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.outbox_id_seq OWNED BY public.outbox.id;

ALTER TABLE ONLY public.audit ALTER COLUMN id SET DEFAULT nextval('public.audit_id_seq'::regclass);

ALTER TABLE ONLY public.cases ALTER COLUMN id SET DEFAULT nextval('public.cases_id_seq'::regclass);

ALTER TABLE ONLY public.messages ALTER COLUMN id SET DEFAULT nextval('public.messages_id_seq'::regclass);

ALTER TABLE ONLY public.outbox ALTER COLUMN id SET DEFAULT nextval('public.outbox_id_seq'::regclass);

ALTER TABLE ONLY public.audit
    ADD CONSTRAINT audit_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.cases
    ADD CONSTRAINT cases_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (folder);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_dedupe_key_key UNIQUE (dedupe_key);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

CREATE INDEX ix_audit_case_ref ON public.audit USING btree (case_ref);

CREATE INDEX ix_cases_cpr_hmac ON public.cases USING btree (cpr_hmac);

CREATE UNIQUE INDEX ix_cases_ref ON public.cases USING btree (ref);

CREATE INDEX ix_messages_case_id ON public.messages USING btree (case_id);

CREATE INDEX ix_messages_content_hash ON public.messages USING btree (content_hash);

CREATE INDEX ix_messages_message_id ON public.messages USING btree (message_id);

CREATE INDEX ix_outbox_case_id ON public.outbox USING btree (case_id);

CREATE INDEX ix_outbox_reply_message_id ON public.outbox USING btree (reply_message_id);

CREATE INDEX ix_outbox_to_addr ON public.outbox USING btree (to_addr);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_case_id_fkey FOREIGN KEY (case_id) REFERENCES public.cases(id);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_case_id_fkey FOREIGN KEY (case_id) REFERENCES public.cases(id);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_message_record_id_fkey FOREIGN KEY (message_record_id) REFERENCES public.messages(id);
