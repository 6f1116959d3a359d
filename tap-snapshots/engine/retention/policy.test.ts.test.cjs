/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`engine/retention/policy.test.ts > TAP > auto grouping: host and job for job snapshots, host and paths otherwise > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s132",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-02T12:00:00.000Z",
    },
    Object {
      "id": "s129",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-02T10:00:00.000Z",
    },
    Object {
      "id": "s131",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-01T12:00:00.000Z",
    },
    Object {
      "id": "s130",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-01T11:00:00.000Z",
    },
  ],
  "policy": "keep 1 latest snapshots",
  "remove": Array [
    "2026-06-01T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > daily 7, weekly 4, monthly 3 over 100 days > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s100",
      "reasons": Array [
        "daily snapshot",
        "weekly snapshot",
        "monthly snapshot",
      ],
      "time": "2026-06-29T10:00:00.000Z",
    },
    Object {
      "id": "s099",
      "reasons": Array [
        "daily snapshot",
        "weekly snapshot",
      ],
      "time": "2026-06-28T10:00:00.000Z",
    },
    Object {
      "id": "s098",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-27T10:00:00.000Z",
    },
    Object {
      "id": "s097",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-26T10:00:00.000Z",
    },
    Object {
      "id": "s096",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-25T10:00:00.000Z",
    },
    Object {
      "id": "s095",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-24T10:00:00.000Z",
    },
    Object {
      "id": "s094",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-23T10:00:00.000Z",
    },
    Object {
      "id": "s092",
      "reasons": Array [
        "weekly snapshot",
      ],
      "time": "2026-06-21T10:00:00.000Z",
    },
    Object {
      "id": "s085",
      "reasons": Array [
        "weekly snapshot",
      ],
      "time": "2026-06-14T10:00:00.000Z",
    },
    Object {
      "id": "s071",
      "reasons": Array [
        "monthly snapshot",
      ],
      "time": "2026-05-31T10:00:00.000Z",
    },
    Object {
      "id": "s040",
      "reasons": Array [
        "monthly snapshot",
      ],
      "time": "2026-04-30T10:00:00.000Z",
    },
  ],
  "policy": "keep 7 daily, 4 weekly, 3 monthly snapshots",
  "remove": Array [
    "2026-06-22T10:00:00.000Z",
    "2026-06-20T10:00:00.000Z",
    "2026-06-19T10:00:00.000Z",
    "2026-06-18T10:00:00.000Z",
    "2026-06-17T10:00:00.000Z",
    "2026-06-16T10:00:00.000Z",
    "2026-06-15T10:00:00.000Z",
    "2026-06-13T10:00:00.000Z",
    "2026-06-12T10:00:00.000Z",
    "2026-06-11T10:00:00.000Z",
    "2026-06-10T10:00:00.000Z",
    "2026-06-09T10:00:00.000Z",
    "2026-06-08T10:00:00.000Z",
    "2026-06-07T10:00:00.000Z",
    "2026-06-06T10:00:00.000Z",
    "2026-06-05T10:00:00.000Z",
    "2026-06-04T10:00:00.000Z",
    "2026-06-03T10:00:00.000Z",
    "2026-06-02T10:00:00.000Z",
    "2026-06-01T10:00:00.000Z",
    "2026-05-30T10:00:00.000Z",
    "2026-05-29T10:00:00.000Z",
    "2026-05-28T10:00:00.000Z",
    "2026-05-27T10:00:00.000Z",
    "2026-05-26T10:00:00.000Z",
    "2026-05-25T10:00:00.000Z",
    "2026-05-24T10:00:00.000Z",
    "2026-05-23T10:00:00.000Z",
    "2026-05-22T10:00:00.000Z",
    "2026-05-21T10:00:00.000Z",
    "2026-05-20T10:00:00.000Z",
    "2026-05-19T10:00:00.000Z",
    "2026-05-18T10:00:00.000Z",
    "2026-05-17T10:00:00.000Z",
    "2026-05-16T10:00:00.000Z",
    "2026-05-15T10:00:00.000Z",
    "2026-05-14T10:00:00.000Z",
    "2026-05-13T10:00:00.000Z",
    "2026-05-12T10:00:00.000Z",
    "2026-05-11T10:00:00.000Z",
    "2026-05-10T10:00:00.000Z",
    "2026-05-09T10:00:00.000Z",
    "2026-05-08T10:00:00.000Z",
    "2026-05-07T10:00:00.000Z",
    "2026-05-06T10:00:00.000Z",
    "2026-05-05T10:00:00.000Z",
    "2026-05-04T10:00:00.000Z",
    "2026-05-03T10:00:00.000Z",
    "2026-05-02T10:00:00.000Z",
    "2026-05-01T10:00:00.000Z",
    "2026-04-29T10:00:00.000Z",
    "2026-04-28T10:00:00.000Z",
    "2026-04-27T10:00:00.000Z",
    "2026-04-26T10:00:00.000Z",
    "2026-04-25T10:00:00.000Z",
    "2026-04-24T10:00:00.000Z",
    "2026-04-23T10:00:00.000Z",
    "2026-04-22T10:00:00.000Z",
    "2026-04-21T10:00:00.000Z",
    "2026-04-20T10:00:00.000Z",
    "2026-04-19T10:00:00.000Z",
    "2026-04-18T10:00:00.000Z",
    "2026-04-17T10:00:00.000Z",
    "2026-04-16T10:00:00.000Z",
    "2026-04-15T10:00:00.000Z",
    "2026-04-14T10:00:00.000Z",
    "2026-04-13T10:00:00.000Z",
    "2026-04-12T10:00:00.000Z",
    "2026-04-11T10:00:00.000Z",
    "2026-04-10T10:00:00.000Z",
    "2026-04-09T10:00:00.000Z",
    "2026-04-08T10:00:00.000Z",
    "2026-04-07T10:00:00.000Z",
    "2026-04-06T10:00:00.000Z",
    "2026-04-05T10:00:00.000Z",
    "2026-04-04T10:00:00.000Z",
    "2026-04-03T10:00:00.000Z",
    "2026-04-02T10:00:00.000Z",
    "2026-04-01T10:00:00.000Z",
    "2026-03-31T10:00:00.000Z",
    "2026-03-30T10:00:00.000Z",
    "2026-03-29T10:00:00.000Z",
    "2026-03-28T10:00:00.000Z",
    "2026-03-27T10:00:00.000Z",
    "2026-03-26T10:00:00.000Z",
    "2026-03-25T10:00:00.000Z",
    "2026-03-24T10:00:00.000Z",
    "2026-03-23T10:00:00.000Z",
    "2026-03-22T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > days are counted in the given time zone > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s144",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T23:30:00.000Z",
    },
    Object {
      "id": "s143",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T21:00:00.000Z",
    },
  ],
  "policy": "keep 10 daily snapshots",
  "remove": Array [],
}
`

exports[`engine/retention/policy.test.ts > TAP > freezes are never removed and not counted > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s126",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-04T10:00:00.000Z",
    },
    Object {
      "id": "s124",
      "reasons": Array [
        "freeze",
      ],
      "time": "2026-06-02T10:00:00.000Z",
    },
    Object {
      "id": "s127",
      "reasons": Array [
        "freeze",
      ],
      "time": "2020-01-01T00:00:00.000Z",
    },
  ],
  "policy": "keep 1 latest snapshots",
  "remove": Array [
    "2026-06-03T10:00:00.000Z",
    "2026-06-01T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > group by nothing: one group > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s134",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-02T10:00:00.000Z",
    },
  ],
  "policy": "keep 1 latest snapshots",
  "remove": Array [
    "2026-06-01T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > keep-last 3 keeps the three newest > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s106",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-06T10:00:00.000Z",
    },
    Object {
      "id": "s105",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-05T10:00:00.000Z",
    },
    Object {
      "id": "s104",
      "reasons": Array [
        "last snapshot",
      ],
      "time": "2026-06-04T10:00:00.000Z",
    },
  ],
  "policy": "keep 3 latest snapshots",
  "remove": Array [
    "2026-06-03T10:00:00.000Z",
    "2026-06-02T10:00:00.000Z",
    "2026-06-01T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > keep-tag lists: all tags of one list > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s141",
      "reasons": Array [
        "has tags [c]",
      ],
      "time": "2026-06-03T10:00:00.000Z",
    },
    Object {
      "id": "s139",
      "reasons": Array [
        "has tags [a, b]",
      ],
      "time": "2026-06-01T10:00:00.000Z",
    },
  ],
  "policy": "keep all snapshots with tags [a, b] [c]",
  "remove": Array [
    "2026-06-04T10:00:00.000Z",
    "2026-06-02T10:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > keep-within counts from the newest snapshot, not from now; future snapshots do not count as newest > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s138",
      "reasons": Array [
        "within 10d",
      ],
      "time": "2027-01-01T00:00:00.000Z",
    },
    Object {
      "id": "s137",
      "reasons": Array [
        "within 10d",
      ],
      "time": "2026-01-20T00:00:00.000Z",
    },
  ],
  "policy": "keep all snapshots within 10d of the newest",
  "remove": Array [
    "2026-01-10T00:00:00.000Z",
    "2026-01-01T00:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > the oldest snapshot is kept while counts are left (restic ≥ 0.16) > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s119",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T12:00:00.000Z",
    },
    Object {
      "id": "s117",
      "reasons": Array [
        "oldest daily snapshot",
      ],
      "time": "2026-06-01T10:00:00.000Z",
    },
  ],
  "policy": "keep 5 daily snapshots",
  "remove": Array [
    "2026-06-01T11:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > the same in UTC: one day > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s146",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T23:30:00.000Z",
    },
  ],
  "policy": "keep 10 daily snapshots",
  "remove": Array [
    "2026-06-01T21:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > unlimited daily (-1) keeps one per day, all days > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s116",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-05T20:00:00.000Z",
    },
    Object {
      "id": "s115",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-04T20:00:00.000Z",
    },
    Object {
      "id": "s114",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-03T20:00:00.000Z",
    },
    Object {
      "id": "s113",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-02T20:00:00.000Z",
    },
    Object {
      "id": "s112",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T20:00:00.000Z",
    },
    Object {
      "id": "s107",
      "reasons": Array [
        "oldest daily snapshot",
      ],
      "time": "2026-06-01T08:00:00.000Z",
    },
  ],
  "policy": "keep all daily snapshots",
  "remove": Array [
    "2026-06-05T08:00:00.000Z",
    "2026-06-04T08:00:00.000Z",
    "2026-06-03T08:00:00.000Z",
    "2026-06-02T08:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > within-daily keeps one per day inside the window only > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s166",
      "reasons": Array [
        "daily within 3d",
      ],
      "time": "2026-06-10T18:00:00.000Z",
    },
    Object {
      "id": "s165",
      "reasons": Array [
        "daily within 3d",
      ],
      "time": "2026-06-09T18:00:00.000Z",
    },
    Object {
      "id": "s164",
      "reasons": Array [
        "daily within 3d",
      ],
      "time": "2026-06-08T18:00:00.000Z",
    },
  ],
  "policy": "keep daily snapshots within 3d",
  "remove": Array [
    "2026-06-10T08:00:00.000Z",
    "2026-06-09T08:00:00.000Z",
    "2026-06-08T08:00:00.000Z",
    "2026-06-07T18:00:00.000Z",
    "2026-06-07T08:00:00.000Z",
    "2026-06-06T18:00:00.000Z",
    "2026-06-06T08:00:00.000Z",
    "2026-06-05T18:00:00.000Z",
    "2026-06-05T08:00:00.000Z",
    "2026-06-04T18:00:00.000Z",
    "2026-06-04T08:00:00.000Z",
    "2026-06-03T18:00:00.000Z",
    "2026-06-03T08:00:00.000Z",
    "2026-06-02T18:00:00.000Z",
    "2026-06-02T08:00:00.000Z",
    "2026-06-01T18:00:00.000Z",
    "2026-06-01T08:00:00.000Z",
  ],
}
`

exports[`engine/retention/policy.test.ts > TAP > without keepOldest (restic ≤ 0.15) the oldest goes > decision 1`] = `
Object {
  "keep": Array [
    Object {
      "id": "s122",
      "reasons": Array [
        "daily snapshot",
      ],
      "time": "2026-06-01T12:00:00.000Z",
    },
  ],
  "policy": "keep 5 daily snapshots",
  "remove": Array [
    "2026-06-01T11:00:00.000Z",
    "2026-06-01T10:00:00.000Z",
  ],
}
`
