// VTK PolyData (.vtp, ASCII XML) of a surface grid for ParaView: points (x, y, z = loss, clipped at zmax, or
// ln(loss + 0.1) with log, as the reference's h52vtp), quads as two triangles each, loss and z as point data.
export function surfaceVtp(
  xs: number[],
  ys: number[],
  loss: ArrayLike<number>,
  o: { zmax?: number; log?: boolean } = {},
): string {
  const nx = xs.length,
    ny = ys.length;
  const z = Array.from({ length: nx * ny }, (_, k) => {
    let v = loss[k];
    if (o.zmax !== undefined && o.zmax > 0) v = Math.min(v, o.zmax);
    if (o.log) v = Math.log(v + 0.1);
    return Number.isFinite(v) ? v : 0;
  });
  const pts: string[] = [];
  for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) pts.push(`${xs[i]} ${ys[j]} ${z[j * nx + i]}`);
  const conn: number[] = [],
    offs: number[] = [];
  for (let j = 0; j + 1 < ny; j++)
    for (let i = 0; i + 1 < nx; i++) {
      const a = j * nx + i,
        b = a + 1,
        c = a + nx + 1,
        d = a + nx;
      conn.push(a, b, c, a, c, d);
      offs.push(conn.length - 3, conn.length);
    }
  return `<?xml version="1.0"?>
<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">
  <PolyData>
    <Piece NumberOfPoints="${nx * ny}" NumberOfVerts="0" NumberOfLines="0" NumberOfStrips="0" \
NumberOfPolys="${offs.length}">
      <Points>
        <DataArray type="Float32" NumberOfComponents="3" format="ascii">${pts.join(' ')}</DataArray>
      </Points>
      <PointData Scalars="loss">
        <DataArray type="Float32" Name="loss" format="ascii">${Array.from(loss, (v) =>
          Number.isFinite(v) ? v : 0,
        ).join(' ')}</DataArray>
        <DataArray type="Float32" Name="z" format="ascii">${z.join(' ')}</DataArray>
      </PointData>
      <Polys>
        <DataArray type="Int32" Name="connectivity" format="ascii">${conn.join(' ')}</DataArray>
        <DataArray type="Int32" Name="offsets" format="ascii">${offs.join(' ')}</DataArray>
      </Polys>
    </Piece>
  </PolyData>
</VTKFile>
`;
}
