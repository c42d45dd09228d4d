{#
    Row Level Security on a mart, for the app role: the post-hook of every model in
    models/marts (dbt_project.yml). Each mart names whose rows it holds in
    meta.tenant_scope; a mart without a known scope fails to build rather than being
    published unguarded. The predicates are those of migration 0005 on the raw and app
    tables, through the same SECURITY DEFINER session functions, so a mart shows a user
    exactly what its source rows would, and nothing without a signed-in session.

    FORCE as on every raw/app/ops table: it binds the table's owner too. dbt connects as
    the administrative role, which must be superuser or BYPASSRLS (README), so FORCE hides
    nothing from dbt's incremental reads of its own table, its delete+insert merges or its
    data tests, and the policy is granted to the app role only.

    Post-hooks run inside the model's transaction, after a rebuilt table (a table model,
    a first or full-refresh incremental run) has taken the old one's place: the new table
    is never visible without its policy, and an incremental run re-creates the policy
    (DROP IF EXISTS, then CREATE) on the table it kept.
#}
{% macro tenant_isolation(app_role='trainu_app') -%}
    {%- if not execute -%} {{ return('') }} {%- endif -%}
    {%- set scope = (config.get('meta') or {}).get('tenant_scope') -%}
    {%- set predicates = tenant_predicates() -%}
    {%- if scope not in predicates -%}
        {{ exceptions.raise_compiler_error(
            "Model " ~ this ~ " needs meta.tenant_scope, one of "
            ~ (predicates.keys() | list | join(', ')) ~ " (macros/tenant_isolation.sql)") }}
    {%- endif -%}
    {%- if config.get('materialized') not in ['table', 'incremental'] -%}
        {#- a view runs as its owner, who bypasses the policies of the tables it reads -#}
        {{ exceptions.raise_compiler_error(
            "Model " ~ this ~ " is a mart the app reads: it must be a table, not a "
            ~ config.get('materialized')) }}
    {%- endif %}
alter table {{ this }} enable row level security;
alter table {{ this }} force row level security;
drop policy if exists tenant_isolation on {{ this }};
create policy tenant_isolation on {{ this }} for select to {{ app_role }}
    using ({{ predicates[scope] }});
grant select on {{ this }} to {{ app_role }};
-- Concurrent GRANTs on one schema fail ("tuple concurrently updated"): models building
-- in parallel threads take turns here, each until its transaction commits.
select pg_advisory_xact_lock(hashtext('trainu.tenant_isolation'));
grant usage on schema {{ this.schema }} to {{ app_role }};
{%- endmacro %}


{#- Each scope's USING clause. Sub-SELECTs of the session functions run once per query. #}
{% macro tenant_predicates() -%}
    {%- set same_location = "location_id = (select app.session_location())" -%}
    {%- set owner = "(" ~ same_location ~ " and (select app.session_role()) = 'owner')" -%}
    {%- set staff = "(select app.session_role()) in ('owner', 'trainer')" -%}
    {%- set me = "(select app.session_user_id())" -%}
    {%- set own_clients = "(" ~ same_location
        ~ " and client_id in (select app.visible_client_ids()))" -%}
    {%- set own_contacts = "(" ~ same_location
        ~ " and contact_id in (select app.visible_contact_ids()))" -%}
    {#- a trainer's own rows: GHL's user id of the app.trainers row of the signed-in user #}
    {%- set own_trainer = "(" ~ same_location ~ " and trainer_user_id in ("
        ~ "select t.ghl_user_id from app.trainers as t"
        ~ " where t.location_id = (select app.session_location()) and t.user_id = " ~ me
        ~ "))" -%}
    {{ return({
        'location': owner,
        'trainer': owner ~ " or " ~ own_trainer,
        'contact': owner ~ " or " ~ own_contacts,
        'client': own_clients,
        'client_staff': own_clients ~ " and " ~ staff,
    }) }}
{%- endmacro %}
