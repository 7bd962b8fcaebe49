#!/usr/bin/env python3
"""Extracts the part of Shopify's published Admin GraphQL schema that orderline uses, as SDL.

Source: the npm package @shopify/dev-mcp (ISC licence), which ships Shopify's introspection of
every supported Admin API version as dist/data/admin_<version>.json.gz. Refresh with

    scripts/shopify-schema/refresh.sh            # npm pack @shopify/dev-mcp@1.16.0, then this script

or, with a tarball already at hand,

    python3 scripts/shopify-schema/extract.py path/to/shopify-dev-mcp-1.16.0.tgz 2026-10

It writes tests/fixtures/shopify/admin_<version>.graphql. What is kept: the root fields in ROOT
(and nothing else of QueryRoot / Mutation), the object, interface and union types in TYPES with
every field whose type is kept, and every enum, scalar and input object those fields reach. A
field whose type is not kept is left out, so the extract stays self-contained. Protected customer
data (Shopify's `isProtected` / `protectedContent` in the introspection: name, email, phone or
address) is kept as the directive `@protectedCustomerData(field:)`, which is ours (the only thing in the file that is
not Shopify's). Needs only the Python standard library; no network.
"""

import gzip
import io
import json
import os
import sys
import tarfile

ROOT = {
    "QueryRoot": [
        "customers", "customer", "customerByIdentifier", "orders", "order", "currentAppInstallation",
        "bulkOperation", "currentBulkOperation", "webhookSubscriptions", "return", "node", "nodes",
    ],
    "Mutation": [
        "bulkOperationRunQuery", "bulkOperationCancel", "webhookSubscriptionCreate",
        "webhookSubscriptionUpdate", "webhookSubscriptionDelete",
    ],
}

TYPES = [
    "Node",
    "PageInfo",
    "Customer", "CustomerConnection", "CustomerEdge", "CustomerEmailAddress", "CustomerPhoneNumber",
    "MailingAddress", "MailingAddressConnection", "MailingAddressEdge",
    "Order", "OrderConnection", "OrderEdge",
    "LineItem", "LineItemConnection", "LineItemEdge",
    "MoneyBag", "MoneyV2",
    "Fulfillment", "FulfillmentTrackingInfo",
    "FulfillmentEvent", "FulfillmentEventConnection", "FulfillmentEventEdge",
    "Refund",
    "Return", "ReturnConnection", "ReturnEdge", "ReturnDecline",
    "ReturnLineItemType", "ReturnLineItemTypeConnection", "ReturnLineItemTypeEdge",
    "ReturnLineItem", "UnverifiedReturnLineItem",
    "ExchangeLineItem", "ExchangeLineItemConnection", "ExchangeLineItemEdge",
    "ReverseFulfillmentOrder", "ReverseFulfillmentOrderConnection", "ReverseFulfillmentOrderEdge",
    "ReverseFulfillmentOrderLineItem", "ReverseFulfillmentOrderLineItemConnection",
    "ReverseFulfillmentOrderLineItemEdge", "ReverseFulfillmentOrderDisposition",
    "ReverseDelivery", "ReverseDeliveryConnection", "ReverseDeliveryEdge", "ReverseDeliveryDeliverable",
    "ReverseDeliveryShippingDeliverable", "ReverseDeliveryTrackingV2", "ReverseDeliveryLabelV2",
    "AppInstallation", "AccessScope",
    "BulkOperation", "BulkOperationRunQueryPayload", "BulkOperationCancelPayload", "BulkOperationUserError",
    "UserError",
    "WebhookSubscription", "WebhookSubscriptionConnection", "WebhookSubscriptionEdge",
    "WebhookSubscriptionCreatePayload", "WebhookSubscriptionUpdatePayload", "WebhookSubscriptionDeletePayload",
]

# Enums orderline reads or that later work needs, kept even if no kept field reached them.
ENUMS = [
    "FulfillmentDisplayStatus", "FulfillmentEventStatus", "FulfillmentStatus",
    "OrderDisplayFulfillmentStatus", "OrderDisplayFinancialStatus", "OrderCancelReason",
    "CustomerState", "ReturnStatus", "BulkOperationStatus", "WebhookSubscriptionTopic",
    "OrderReturnStatus", "ReturnDeclineReason", "ReverseFulfillmentOrderStatus",
    "ReverseFulfillmentOrderDispositionType",
]

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "..", "tests", "fixtures", "shopify")


def load(tarball, version):
    member = f"package/dist/data/admin_{version}.json.gz"
    with tarfile.open(tarball, "r:gz") as tar:
        raw = tar.extractfile(member).read()
    return json.load(io.BytesIO(gzip.decompress(raw)))["data"]["__schema"]


def named(t):
    while t.get("ofType"):
        t = t["ofType"]
    return t["name"]


def render_type(t):
    if t["kind"] == "NON_NULL":
        return render_type(t["ofType"]) + "!"
    if t["kind"] == "LIST":
        return "[" + render_type(t["ofType"]) + "]"
    return t["name"]


def string(s):
    return json.dumps(s, ensure_ascii=False)


def deprecated(item):
    if not item.get("isDeprecated"):
        return ""
    reason = item.get("deprecationReason")
    return f" @deprecated(reason: {string(reason)})" if reason else " @deprecated"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: extract.py <shopify-dev-mcp tarball> <api version, e.g. 2026-10>")
    tarball, version = sys.argv[1], sys.argv[2]
    schema = load(tarball, version)
    types = {t["name"]: t for t in schema["types"]}
    query_name = schema["queryType"]["name"]
    mutation_name = schema["mutationType"]["name"]
    missing = [n for n in TYPES + ENUMS + list(ROOT) if n not in types]
    if missing:
        sys.exit(f"not in the {version} schema: {missing}")

    composite = set(TYPES) | set(ROOT)
    leaves = set()  # enums, scalars, input objects

    def usable(type_name):
        kind = types[type_name]["kind"]
        return type_name in composite or kind in ("SCALAR", "ENUM", "INPUT_OBJECT")

    def kept_fields(t):
        wanted = ROOT.get(t["name"])
        fields = []
        for f in t["fields"] or []:
            if wanted is not None and f["name"] not in wanted:
                continue
            if not usable(named(f["type"])):
                continue
            if any(not usable(named(a["type"])) for a in f["args"]):
                continue
            fields.append(f)
        return fields

    # Close over the leaves the kept fields and arguments reach.
    todo = []
    for name in composite:
        for f in kept_fields(types[name]):
            todo.append(named(f["type"]))
            todo.extend(named(a["type"]) for a in f["args"])
    todo.extend(ENUMS)
    while todo:
        name = todo.pop()
        t = types[name]
        if t["kind"] in ("OBJECT", "INTERFACE", "UNION") or name in leaves:
            continue
        leaves.add(name)
        todo.extend(named(f["type"]) for f in t.get("inputFields") or [])

    def args_sdl(args):
        if not args:
            return ""
        parts = []
        for a in args:
            default = f" = {a['defaultValue']}" if a.get("defaultValue") is not None else ""
            parts.append(f"{a['name']}: {render_type(a['type'])}{default}{deprecated(a)}")
        return "(" + ", ".join(parts) + ")"

    out = [
        f"# Shopify Admin GraphQL API {version}: the part orderline uses.",
        "# Extracted by scripts/shopify-schema/extract.py from @shopify/dev-mcp (ISC),",
        f"# dist/data/admin_{version}.json.gz. Do not edit by hand: run the script.",
        "",
        "directive @protectedCustomerData(field: String!) on FIELD_DEFINITION",
        "",
    ]
    # Shopify's own directives (the GraphQL built-ins are every validator's already).
    for d in schema["directives"]:
        if d["name"] in ("include", "skip", "deprecated", "specifiedBy"):
            continue
        repeatable = " repeatable" if d.get("isRepeatable") else ""
        out.append(f"directive @{d['name']}{args_sdl(d['args'])}{repeatable} on " + " | ".join(d["locations"]))
    out += ["", f"schema {{ query: {query_name} mutation: {mutation_name} }}", ""]
    builtin = {"String", "Int", "Float", "Boolean", "ID"}

    for name in sorted(composite | leaves):
        t = types[name]
        kind = t["kind"]
        if kind == "SCALAR":
            if name not in builtin:
                out.append(f"scalar {name}")
        elif kind == "ENUM":
            out.append(f"enum {name} {{")
            out.extend(f"  {v['name']}{deprecated(v)}" for v in t["enumValues"])
            out.append("}")
        elif kind == "INPUT_OBJECT":
            one_of = " @oneOf" if t.get("isOneOf") else ""
            out.append(f"input {name}{one_of} {{")
            for f in t["inputFields"]:
                default = f" = {f['defaultValue']}" if f.get("defaultValue") is not None else ""
                out.append(f"  {f['name']}: {render_type(f['type'])}{default}{deprecated(f)}")
            out.append("}")
        elif kind == "UNION":
            members = [p["name"] for p in t["possibleTypes"] if p["name"] in composite]
            if members:
                out.append(f"union {name} = " + " | ".join(members))
        else:
            keyword = "type" if kind == "OBJECT" else "interface"
            interfaces = [i["name"] for i in t.get("interfaces") or [] if i["name"] in composite]
            implements = " implements " + " & ".join(interfaces) if interfaces else ""
            out.append(f"{keyword} {name}{implements} {{")
            for f in kept_fields(t):
                protected = ""
                if f.get("isProtected"):
                    protected = f" @protectedCustomerData(field: {string(f['protectedContent'])})"
                out.append(f"  {f['name']}{args_sdl(f['args'])}: {render_type(f['type'])}{deprecated(f)}{protected}")
            out.append("}")
        out.append("")

    path = os.path.join(OUT_DIR, f"admin_{version}.graphql")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out).rstrip("\n") + "\n")
    print(f"wrote {os.path.relpath(path)}: {len(composite)} object/interface types, {len(leaves)} enums/scalars/inputs")


if __name__ == "__main__":
    main()
